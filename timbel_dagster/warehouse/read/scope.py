"""Tenant scope in SQL: the rows a list may return when the caller sees only some tenants.

`tenants` is None (every tenant) or a tuple of tenant names; rows with no tenant are visible
to everyone. A pipeline's tenant is its service's (`service_owners.tenant`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, true

from timbel_dagster.warehouse.schema.identity import ServiceOwner

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
