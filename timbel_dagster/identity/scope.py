"""The rows a principal may see under a TENANT-scoped action, decided once.

`visible_tenants` gives None for "every tenant" (operations and admin, as the policy table
says) or the tuple of the principal's tenants; the warehouse's read queries take that value
and keep the rows whose tenant is one of them, or that belong to no tenant
(`warehouse.read.scope`).

Images are the one kind of row with no "no tenant": an image (its vulnerability findings,
the gate's verdict on it) belongs to the tenants of the services that deployed it or asked
for it, and a caller limited to their tenants sees only those images; one no service of a
tenant has named is seen only by the roles that see every tenant (operations, admin). Under
`security.read` an image of another tenant answers 404, as an unknown one
(`api.routers.security`)."""

from __future__ import annotations

from timbel_dagster.identity.policy import ALL_SCOPES, Scope, rule
from timbel_dagster.identity.principal import Principal

Tenants = tuple[str, ...] | None


def visible_tenants(principal: Principal, action: str) -> Tenants:
    """None when `principal` sees every tenant's rows for `action`, else their tenants."""
    if rule(action).scope is not Scope.TENANT or principal.role in ALL_SCOPES:
        return None
    return tuple(principal.tenants)
