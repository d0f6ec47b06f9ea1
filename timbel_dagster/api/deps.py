"""What every route depends on: the warehouse engine, the principal a bearer token stands
for, and `require(action)`, the policy table's outer gate.

401 and 403 happen before any domain function runs, so they are audited here as
`api.refused` (the domain audits its own refusals). A flood of bad tokens must not grow the
audit chain without limit: a 401 is audited at most once a minute per presented token.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from timbel_dagster.api.errors import ApiError
from timbel_dagster.identity import tokens
from timbel_dagster.identity.authorize import may_role
from timbel_dagster.identity.principal import Principal
from timbel_dagster.warehouse.audit.chain import append_event

ANONYMOUS = "anonymous"
UNAUTHENTICATED_AUDITED_EVERY = dt.timedelta(minutes=1)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `timbel token create --user NAME`: "
    "`Authorization: Bearer tbl_...`.",
)


class RefusalThrottle:
    """Remembers when a 401 was last audited for a key (a digest of the presented token)."""

    def __init__(self, every: dt.timedelta = UNAUTHENTICATED_AUDITED_EVERY) -> None:
        self.every = every
        self._last: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()

    def due(self, key: str, now: dt.datetime) -> bool:
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every:
                return False
            # Forget old keys so distinct bad tokens cannot grow this map without limit.
            self._last = {k: t for k, t in self._last.items() if now - t < self.every}
            self._last[key] = now
            return True


def warehouse_engine(request: Request) -> Engine:
    """The app's engine (one pool per process, made by create_app)."""
    return request.app.state.engine


def _audit_refusal(engine: Engine, actor: str, request: Request, details: dict[str, Any]) -> None:
    with engine.begin() as connection:
        append_event(
            connection,
            actor=actor,
            action="api.refused",
            target=f"{request.method} {request.url.path}",
            details=details,
        )


def _unauthenticated(
    request: Request, engine: Engine, key: str, reason: str, detail: str
) -> ApiError:
    throttle: RefusalThrottle = request.app.state.refusal_throttle
    if throttle.due(key, dt.datetime.now(dt.UTC)):
        _audit_refusal(engine, ANONYMOUS, request, {"status": 401, "reason": reason})
    return ApiError(401, detail, kind="unauthenticated", headers=_CHALLENGE)


def principal(
    request: Request,
    engine: Annotated[Engine, Depends(warehouse_engine)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal of the request's bearer token; 401 (audited) without a valid one."""
    if credentials is None:
        raise _unauthenticated(
            request,
            engine,
            "missing",
            "missing",
            "no API token: send `Authorization: Bearer <token>` (`timbel token create`)",
        )
    client = request.client.host if request.client else None
    try:
        return tokens.verify_token(engine, credentials.credentials, ip=client)
    except tokens.TokenRefusedError as error:
        key = tokens.digest(credentials.credentials)
        raise _unauthenticated(request, engine, key, error.reason, str(error)) from None


def forbid(request: Request, engine: Engine, who: Principal, action: str, reason: str) -> ApiError:
    """A 403 for `who` on `action` whose scope check (team, tenant) a route made, audited as
    `api.refused` like the outer gate's refusals; the route raises it."""
    _audit_refusal(engine, who.user, request, {"status": 403, "action": action, "reason": reason})
    return ApiError(403, reason, kind="forbidden")


def require(action: str) -> Callable[..., Principal]:
    """A dependency: the principal, if the policy table lets them take `action` (else 403,
    audited with the principal and the reason)."""

    def dependency(
        request: Request,
        engine: Annotated[Engine, Depends(warehouse_engine)],
        who: Annotated[Principal, Depends(principal)],
    ) -> Principal:
        # The role alone: a team- or tenant-scoped action is checked again by the route once
        # it has found what is acted on (a TEAM rule without a target would refuse everyone).
        decision = may_role(who, action)
        if not decision.allowed:
            _audit_refusal(
                engine,
                who.user,
                request,
                {"status": 403, "action": action, "reason": decision.reason},
            )
            raise ApiError(403, decision.reason, kind="forbidden")
        return who

    dependency.__name__ = f"require_{action.replace('.', '_')}"
    return dependency
