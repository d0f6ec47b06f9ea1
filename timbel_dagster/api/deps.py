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

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from timbel_dagster.api.errors import ApiError
from timbel_dagster.api.ratelimit import RateLimiter, key_of, too_many
from timbel_dagster.identity import tokens
from timbel_dagster.identity.authorize import may_role
from timbel_dagster.identity.oidc import OidcRefusedError, OidcVerifier
from timbel_dagster.identity.policy import rule
from timbel_dagster.identity.principal import Principal
from timbel_dagster.warehouse.audit.chain import append_event

ANONYMOUS = "anonymous"
UNAUTHENTICATED_AUDITED_EVERY = dt.timedelta(minutes=1)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `timbel token create --user NAME`: "
    "`Authorization: Bearer tbl_...`, or, where OIDC is configured, a JWT of the issuer.",
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


def audit_refusal(engine: Engine, actor: str, request: Request, details: dict[str, Any]) -> None:
    """Audit a refusal that happened before any domain function ran (`api.refused`)."""
    with engine.begin() as connection:
        append_event(
            connection,
            actor=actor,
            action="api.refused",
            target=f"{request.method} {request.url.path}",
            details=details,
        )


def audit_unauthenticated(
    request: Request, engine: Engine, key: str, reason: str, *, status: int = 401, **details: Any
) -> None:
    """Audit a refusal of someone not known (`api.refused` by anonymous; a 401 unless
    `status` says otherwise, with `details` beside), at most once a minute per `key`."""
    throttle: RefusalThrottle = request.app.state.refusal_throttle
    if throttle.due(key, dt.datetime.now(dt.UTC)):
        audit_refusal(engine, ANONYMOUS, request, {"status": status, "reason": reason} | details)


def _unauthenticated(
    request: Request, engine: Engine, key: str, reason: str, detail: str
) -> ApiError:
    # Nobody is known yet: the client's address is the rate limit's key.
    client = request.client.host if request.client else "unknown"
    verdict = request.app.state.rate_limiter.hit(f"ip:{client}", write=False)
    if not verdict.allowed:
        return too_many(verdict, "read")
    audit_unauthenticated(request, engine, key, reason)
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
    secret = credentials.credentials
    oidc: OidcVerifier | None = request.app.state.oidc
    client = request.client.host if request.client else None
    try:
        if oidc is not None and not secret.startswith(tokens.SECRET_PREFIX):
            return oidc.principal(engine, secret)
        return tokens.verify_token(engine, secret, ip=client)
    except (tokens.TokenRefusedError, OidcRefusedError) as error:
        key = tokens.digest(secret)
        raise _unauthenticated(request, engine, key, error.reason, str(error)) from None


def _limit(request: Request, response: Response, who: Principal, *, write: bool) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    verdict = limiter.hit(key_of(who), write=write)
    if not verdict.allowed:
        raise too_many(verdict, "write" if write else "read")
    response.headers.update(verdict.headers())


def signed_in(
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(principal)],
) -> Principal:
    """The principal, counted against their read limit: for routes that need a valid token
    but no action of the policy table (/me)."""
    _limit(request, response, who, write=False)
    return who


def forbid(request: Request, engine: Engine, who: Principal, action: str, reason: str) -> ApiError:
    """A 403 for `who` on `action` whose scope check (team, tenant) a route made, audited as
    `api.refused` like the outer gate's refusals; the route raises it."""
    audit_refusal(engine, who.user, request, {"status": 403, "action": action, "reason": reason})
    return ApiError(403, reason, kind="forbidden")


def require(action: str) -> Callable[..., Principal]:
    """A dependency: the principal, if the policy table lets them take `action` (else 403,
    audited with the principal and the reason), within their rate limit (the rule's `write`
    flag picks the bucket; else 429).

    The dependency carries `policy_action`, so the authorization matrix test and the docs'
    route table read which action each route names."""
    write = rule(action).write  # an unknown action fails here, when the route is declared

    def dependency(
        request: Request,
        response: Response,
        engine: Annotated[Engine, Depends(warehouse_engine)],
        who: Annotated[Principal, Depends(principal)],
    ) -> Principal:
        _limit(request, response, who, write=write)
        # The role alone: a team- or tenant-scoped action is checked again by the route once
        # it has found what is acted on (a TEAM rule without a target would refuse everyone).
        decision = may_role(who, action)
        if not decision.allowed:
            audit_refusal(
                engine,
                who.user,
                request,
                {"status": 403, "action": action, "reason": decision.reason},
            )
            raise ApiError(403, decision.reason, kind="forbidden")
        return who

    dependency.__name__ = f"require_{action.replace('.', '_')}"
    dependency.policy_action = action  # type: ignore[attr-defined]
    return dependency


def no_nul_characters(request: Request) -> None:
    """422 for a query or path parameter holding a NUL character: no stored text can (on
    PostgreSQL it was a database error, a 500; found by the contract test). Every route
    depends on it (`create_app`)."""
    params = [("query", name, value) for name, value in request.query_params.multi_items()]
    params += [("path", name, value) for name, value in request.path_params.items()]
    bad = [
        {"loc": (where, name), "msg": "contains a NUL character", "type": "value_error"}
        for where, name, value in params
        if isinstance(value, str) and "\x00" in value
    ]
    if bad:
        raise RequestValidationError(bad)
