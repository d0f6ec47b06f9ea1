"""Tenant scope of one thing a route returns: 403 (audited like `require`'s refusals) when
the principal may not see the tenant it belongs to. Lists are scoped in their queries
instead (`identity.scope.visible_tenants`)."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.guard import check
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal


def require_tenant(
    request: Request, engine: Engine, who: Principal, action: str, tenant: str | None
) -> None:
    """Return if `who` may take `action` on a row of `tenant`; else audit and raise 403."""
    check(request, engine, who, action, Target(tenant=tenant))
