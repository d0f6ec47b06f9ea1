"""Open vulnerability findings a page at a time (`GET /api/v1/security/findings`): every
artifact's, or one image's as the gate sees them (its newest scan, `policy.image_scan`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from timbel_dagster.security.policy import image_scan
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

COLUMNS = ("vulnerability_id", "pkg_name", "installed_version", "fixed_version", "severity",
           "target", "artifact_name", "artifact_key", "first_seen", "last_seen", "title",
           "primary_url", "cvss_score")  # fmt: skip


class NeverScannedError(LookupError):
    """The image has no successful scan stored."""


def open_findings(
    connection: Connection,
    image: str | None = None,
    severity: str | None = None,
    after: uuid.UUID | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Up to `limit` open findings (`fixed_at` unset) after id `after`, by id (the primary
    key's order, so a deep page reads what the first does). With `image`: only those of its
    newest scan, matched by digest as the gate matches it (`image_findings`).

    Raises:
        NeverScannedError: `image` was never scanned.
        ValueError: `image` is not an image reference.
    """
    table = VulnerabilityFinding.__table__
    query = select(table.c.id, *(table.c[c] for c in COLUMNS)).where(table.c.fixed_at.is_(None))
    if image is not None:
        scan = image_scan(connection, image)
        if scan is None:
            raise NeverScannedError(f"image {image} was never scanned (or every scan failed)")
        query = query.where(
            table.c.artifact_key == scan["artifact_key"],
            table.c.last_seen >= scan["scanned_at"],
        )
    if severity is not None:
        query = query.where(table.c.severity == severity)
    if after is not None:
        query = query.where(table.c.id > after)
    rows = connection.execute(query.order_by(table.c.id).limit(limit)).mappings()
    return [dict(row) | {"id": str(row["id"])} for row in rows]
