"""Open vulnerability findings a page at a time (`GET /api/v1/security/findings`): every
artifact's, or one image's as the gate sees them (its newest scan, `policy.image_scan`);
one finding by id; and whether a caller who sees only some tenants may see an image.

Tenant scope (`tenants`, as `identity.scope.visible_tenants` gives it): None sees every
image; otherwise only the images a deployment or deployment request of a service of one of
`tenants` names (`warehouse.read.scope.artifact_visible`). An image no tenant's service has
named is seen only by those who see every tenant. The command line reads with None: it is
an operator with the warehouse's credentials."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import literal, select

from timbel_dagster.records.image_ref import parse_image
from timbel_dagster.security.policy import image_scan
from timbel_dagster.warehouse.read.scope import artifact_visible, reference_visible
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.identity.scope import Tenants

COLUMNS = ("vulnerability_id", "pkg_name", "installed_version", "fixed_version", "severity",
           "target", "artifact_name", "artifact_key", "first_seen", "last_seen", "fixed_at",
           "title", "primary_url", "cvss_score")  # fmt: skip


class NeverScannedError(LookupError):
    """The image has no successful scan stored."""


class InvisibleImageError(LookupError):
    """No service of the caller's tenants deployed or asked for the image (an image nothing
    knows included): the caller is told no more than that."""

    def __init__(self, image: str) -> None:
        super().__init__(
            f"no image {image!r} among those your tenants' services deployed or requested"
        )


def image_visible(connection: Connection, image: str, tenants: Tenants) -> bool:
    """Whether a caller who sees `tenants` may see `image`: a deployment or request of their
    tenants' services names it, as written (or parsed), or names the artifact its newest
    scan is of. Always True for None.

    Raises:
        ValueError: `image` is not an image reference.
    """
    ref = parse_image(image)
    if tenants is None:
        return True
    forms = sorted({image, str(ref), *([ref.tagged] if ref.tagged else [])})
    condition = reference_visible(forms, tenants)
    scan = image_scan(connection, image)
    if scan is not None:
        condition = condition | artifact_visible(literal(scan["artifact_key"]), tenants)
    return bool(connection.execute(select(condition)).scalar())


def open_findings(
    connection: Connection,
    image: str | None = None,
    severity: str | None = None,
    after: uuid.UUID | None = None,
    limit: int = 50,
    tenants: Tenants = None,
) -> list[dict[str, Any]]:
    """Up to `limit` open findings (`fixed_at` unset) after id `after`, by id (the primary
    key's order, so a deep page reads what the first does), of the images `tenants` may see
    (None: all). With `image`: only those of its newest scan, matched by digest as the gate
    matches it (`image_findings`).

    Raises:
        InvisibleImageError: `tenants` may not see `image` (checked before anything else,
            so an image of another tenant and an unknown one answer alike).
        NeverScannedError: `image` was never scanned.
        ValueError: `image` is not an image reference.
    """
    table = VulnerabilityFinding.__table__
    query = select(table.c.id, *(table.c[c] for c in COLUMNS)).where(table.c.fixed_at.is_(None))
    if image is not None:
        if not image_visible(connection, image, tenants):
            raise InvisibleImageError(image)
        scan = image_scan(connection, image)
        if scan is None:
            raise NeverScannedError(f"image {image} was never scanned (or every scan failed)")
        query = query.where(
            table.c.artifact_key == scan["artifact_key"],
            table.c.last_seen >= scan["scanned_at"],
        )
    else:
        query = query.where(artifact_visible(table.c.artifact_key, tenants))
    if severity is not None:
        query = query.where(table.c.severity == severity)
    if after is not None:
        query = query.where(table.c.id > after)
    rows = connection.execute(query.order_by(table.c.id).limit(limit)).mappings()
    return [dict(row) | {"id": str(row["id"])} for row in rows]


def finding(connection: Connection, ident: uuid.UUID, tenants: Tenants = None) -> dict | None:
    """Finding `ident`, open or fixed, when its image is one `tenants` may see; None for an
    unknown id and for a finding of an image they may not see alike."""
    table = VulnerabilityFinding.__table__
    query = select(table.c.id, *(table.c[c] for c in COLUMNS)).where(
        table.c.id == ident, artifact_visible(table.c.artifact_key, tenants)
    )
    row = connection.execute(query).mappings().first()
    return dict(row) | {"id": str(row["id"])} if row else None
