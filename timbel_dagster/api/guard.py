"""Checks a route makes after the policy table's outer gate (`deps.require`): the tenant,
team or owner of the one thing acted on, and the domain's own refusals turned into Problems.

A refusal here is audited as `api.refused` with the real actor, as `deps.require`'s are.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import forbid
from timbel_dagster.api.errors import ApiError
from timbel_dagster.identity.authorize import Target, may
from timbel_dagster.identity.principal import Principal


def check(request: Request, engine: Engine, who: Principal, action: str, target: Target) -> None:
    """403 (audited) unless the policy lets `who` take `action` on `target`."""
    decision = may(who, action, target)
    if not decision.allowed:
        raise forbid(request, engine, who, action, decision.reason)


def sees(who: Principal, action: str, tenant: str | None) -> bool:
    """Whether a row of `tenant` (None: no tenant) is in `who`'s scope for `action`."""
    return may(who, action, Target(tenant=tenant)).allowed


def invalid(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 naming the field (`("body", "matchers")`) whose value the domain refused."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def not_found(message: str) -> ApiError:
    return ApiError(404, message, kind="not-found")
