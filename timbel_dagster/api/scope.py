"""Tenant scope of one thing a route returns: 403 (audited like `require`'s refusals) when
the principal may not see the tenant it belongs to. Lists are scoped in their queries
instead (`identity.scope.visible_tenants`)."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import _audit_refusal
from timbel_dagster.api.errors import ApiError
from timbel_dagster.identity.authorize import Target, may
from timbel_dagster.identity.principal import Principal


def require_tenant(
    request: Request, engine: Engine, who: Principal, action: str, tenant: str | None
) -> None:
    """Return if `who` may take `action` on a row of `tenant`; else audit and raise 403."""
    decision = may(who, action, Target(tenant=tenant))
    if decision.allowed:
        return
    details = {"status": 403, "action": action, "tenant": tenant, "reason": decision.reason}
    _audit_refusal(engine, who.user, request, details)
    raise ApiError(403, decision.reason, kind="forbidden")
