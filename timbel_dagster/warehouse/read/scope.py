"""Tenant scope in SQL: the rows a list may return when the caller sees only some tenants.

`tenants` is None (every tenant) or a tuple of tenant names; rows with no tenant are visible
to everyone. A pipeline's tenant is its service's (`service_owners.tenant`).

Images are the exception to "no tenant, visible to everyone": an image (and its scans'
findings) belongs to the tenants of the services that deployed it or asked for it (a
`deployments` or `deployment_requests` row naming it, whatever that row's status), and to no
other. An image no service of a tenant has named (never deployed, or only by services in no
tenant) is visible only to those who see every tenant (operations and admin): a finding
names a weakness an attacker can use, so only a positive link to one of the caller's
tenants shows it. A row names an image when its `image` is, exactly, a name the warehouse
knows the image by: the artifact name a scan of it recorded, or a tag `registry_images`
lists for its digest (`host/repo:tag`, `host/repo@digest` or `host/repo:tag@digest`)
(`artifact_visible`); a lookup by reference also accepts that reference itself
(`reference_visible`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import false, or_, select, true

from timbel_dagster.warehouse.schema.deploy import DeploymentRequest
from timbel_dagster.warehouse.schema.identity import ServiceOwner
from timbel_dagster.warehouse.schema.models import Deployment
from timbel_dagster.warehouse.schema.registry import RegistryImage
from timbel_dagster.warehouse.schema.security import ScanResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def tenant_visible(column: Any, tenants: tuple[str, ...] | None) -> Any:
    """A condition on a tenant `column`: NULL or one of `tenants` (always true for None)."""
    if tenants is None:
        return true()
    if not tenants:
        return column.is_(None)
    return column.is_(None) | column.in_(tenants)


def service_visible(service: Any, tenants: tuple[str, ...] | None) -> Any:
    """A condition on a `service` column: no owner row puts it in a tenant outside
    `tenants`. A NOT EXISTS on service_owners' primary key, so the big table it filters keeps
    its own index order."""
    if tenants is None:
        return true()
    owner = ServiceOwner.__table__
    hidden = select(owner.c.service).where(owner.c.service == service, owner.c.tenant.is_not(None))
    if tenants:
        hidden = hidden.where(owner.c.tenant.not_in(tenants))
    return ~hidden.exists()


def service_tenant(service: Any) -> Any:
    """A scalar subquery: the tenant of `service` (NULL when none)."""
    owner = ServiceOwner.__table__
    return select(owner.c.tenant).where(owner.c.service == service).scalar_subquery()


def tenant_of_service(connection: Connection, service: str) -> str | None:
    """The tenant `service` belongs to (None: no owner row, or an owner with no tenant)."""
    owner = ServiceOwner.__table__
    query = select(owner.c.tenant).where(owner.c.service == service)
    return connection.execute(query).scalar_one_or_none()


def _named_by_tenants(images: Any, tenants: tuple[str, ...], *where: Any) -> Any:
    """A condition: a deployment or a deployment request of a service of `tenants` has an
    `image` equal to one of `images` (expressions over the tables in `where`, or strings).
    Read through the `image, service` indexes of both tables (migration 0022), then
    service_owners' primary key."""
    owner = ServiceOwner.__table__
    found = []
    for table in (Deployment.__table__, DeploymentRequest.__table__):
        found.append(
            select(table.c.id)
            .join(owner, owner.c.service == table.c.service)
            .where(*where, table.c.image.in_(images), owner.c.tenant.in_(tenants))
            .exists()
        )
    return or_(*found)


def artifact_visible(artifact_key: Any, tenants: tuple[str, ...] | None) -> Any:
    """A condition on an `artifact_key` (a finding's or a scan's: the image digest, else its
    name): a deployment or request of a service of `tenants` names the image by a name the
    warehouse knows it by, the artifact name one of its scans recorded, or for a tag
    `registry_images` lists for the digest `host/repo:tag`, `host/repo@digest` or
    `host/repo:tag@digest` (always true for None; false for no tenants: an image is never a
    row of no tenant). One EXISTS per way, each a join read through indexes: scan_results
    (artifact_key, scanned_at) or registry_images (digest), then the rows naming it."""
    if tenants is None:
        return true()
    if not tenants:
        return false()
    scan, image = ScanResult.__table__, RegistryImage.__table__
    name = image.c.registry + "/" + image.c.repository
    tagged = name + ":" + image.c.tag
    return or_(
        _named_by_tenants([scan.c.artifact_name], tenants, scan.c.artifact_key == artifact_key),
        _named_by_tenants(
            [tagged, name + "@" + image.c.digest, tagged + "@" + image.c.digest],
            tenants,
            image.c.digest == artifact_key,
        ),
    )


def reference_visible(references: list[str], tenants: tuple[str, ...] | None) -> Any:
    """A condition: a deployment or request of a service of `tenants` names one of
    `references` (the ways one image reference may be written) exactly."""
    if tenants is None:
        return true()
    if not tenants:
        return false()
    return _named_by_tenants(references, tenants)
