"""The approvals page: log in with an API token (or through SSO, `sso.py`), see the requests
you may decide, approve or reject each with a reason. Server-rendered HTML forms, no script.

Each decision goes through `Requests.decide`, the function `timbel deploy approve/reject`
calls, which checks the chain step, the owning team and the security gate, and audits the
decision (or its refusal) with the logged-in user. Before it, the page checks the CSRF token
and asks `deciders.may_decide` (the policy table's `deploy.approve` / `deploy.reject` with
the service's owning team, the gate the Slack buttons ask too); those refusals are audited
as `api.refused`, like the API's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import audit_refusal, audit_unauthenticated, warehouse_engine
from timbel_dagster.api.web import session as sessions
from timbel_dagster.api.web.render import client_ip, login_page, page, redirect, sso_verifier
from timbel_dagster.api.web.views import gate_view, risk_view, steps_view
from timbel_dagster.deploy.deciders import decidable, decision_action, may_decide
from timbel_dagster.deploy.lookup import RequestError
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.deploy.service import requests_from_settings
from timbel_dagster.identity import tokens
from timbel_dagster.identity.oidc import OidcRefusedError
from timbel_dagster.identity.oidc_login import session_principal
from timbel_dagster.identity.principal import Principal

router = APIRouter(include_in_schema=False)
EngineDep = Annotated[Engine, Depends(warehouse_engine)]
NO_TOKEN = "no API token: paste one from `timbel token create --user NAME`"
# The page is for people deciding requests; automation uses the API with its token.
SERVICE_ACCOUNT = (
    "%s is a service account: its tokens work on the API, not on the approvals page, "
    "which is for people"
)


def _not_done(request: Request, who: Principal | None, status: int, message: str) -> Response:
    """The page that says why nothing changed."""
    return page(request, "refused.html", status, who=who, status=status, message=message)


def _who(request: Request, engine: Engine) -> tuple[Principal, sessions.Session] | None:
    """The logged-in principal and their session; None without a live session (no cookie,
    a forged or old one, a token since revoked or expired, or a user since disabled)."""
    session = sessions.read_session(request)
    if session is None:
        return None
    try:
        if session.token_id is not None:
            who = tokens.verify_token_id(engine, session.token_id, ip=client_ip(request))
        else:
            who = _sso_principal(request, engine, session)
    except (tokens.TokenRefusedError, OidcRefusedError):
        return None
    if who.kind != "person":  # made a service account since the session opened
        return None
    return who, session


def _sso_principal(request: Request, engine: Engine, session: sessions.Session) -> Principal:
    oidc = sso_verifier(request)
    signed_in = session.oidc
    if oidc is None or signed_in is None:  # SSO switched off since: its sessions end
        raise OidcRefusedError("invalid", "SSO sign-in is not configured")
    return session_principal(oidc, engine, signed_in.user, signed_in.subject, signed_in.role)


@router.get("/login")
def login_form(request: Request, engine: EngineDep) -> Response:
    """The login form (the approvals page when already logged in)."""
    if _who(request, engine) is not None:
        return redirect("/approvals")
    return login_page(request)


@router.post("/login")
def login(request: Request, engine: EngineDep, token: Annotated[str, Form()] = "") -> Response:
    """Open a session for a valid API token; refuse any other with the API's 401 message."""
    secret = token.strip()
    try:
        if not secret:
            raise tokens.TokenRefusedError("missing", NO_TOKEN)
        who = tokens.verify_token(engine, secret, ip=client_ip(request))
        if who.kind != "person":
            raise tokens.TokenRefusedError("service_account", SERVICE_ACCOUNT % who.user)
    except tokens.TokenRefusedError as error:
        key = tokens.digest(secret) if secret else "missing"
        audit_unauthenticated(request, engine, key, error.reason)
        return login_page(request, 401, str(error))
    response = redirect("/approvals")
    sessions.open_session(request, response, who.token_id)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """End the session (the cookie is dropped; the token itself stays valid, and so does the
    issuer's own session after SSO). The form's CSRF token is required, so another site
    cannot log you out either."""
    session = sessions.read_session(request)
    if session is not None and not sessions.csrf_valid(request, session, csrf):
        return _not_done(request, None, 403, "the form's CSRF token is missing or wrong")
    response = redirect("/login")
    sessions.close_session(request, response)
    return response


@router.get("/approvals")
def approvals(request: Request, engine: EngineDep, decided: str | None = None) -> Response:
    """The pending requests the logged-in user may decide at their current step."""
    found = _who(request, engine)
    if found is None:
        return redirect("/login")
    who, session = found
    settings = request.app.state.settings
    requests = requests_from_settings(settings, engine)
    # A read writes nothing: an expired request is simply not decidable (`decidable`).
    with engine.connect() as connection:
        waiting = decidable(connection, who.user, requests.clock())
    items = [
        item
        | {
            "risk_view": risk_view(item.get("risk")),
            "gate_view": gate_view(requests.gate(str(item["number"]))),
            "steps_view": steps_view(item["steps"]),
        }
        for item in waiting
    ]
    notice = _notice(requests, decided) if decided and decided.isdigit() else None
    return page(
        request,
        "approvals.html",
        who=who,
        items=items,
        notice=notice,
        csrf=sessions.csrf_token(request, session),
    )


def _notice(requests: Requests, ref: str) -> str | None:
    """What became of the request just decided, read back from the warehouse."""
    try:
        status = requests.status(ref)
    except RequestError:
        return None
    pending = [s for s in status["steps"] if s["decision"] == "pending"]
    state = status["status"]
    if state == "pending" and pending:
        state += f", waiting for step {pending[0]['position']} ({pending[0]['role']})"
    return f"request #{status['number']} is now {state}"


def _refused(
    request: Request, engine: Engine, who: Principal, status: int, message: str, **details: Any
) -> Response:
    audit_refusal(engine, who.user, request, {"status": status, "reason": message} | details)
    return _not_done(request, who, status, message)


@router.post("/approvals/{number}/decide")
def decide(
    request: Request,
    engine: EngineDep,
    number: int,
    csrf: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Approve or reject request `number`'s current step as the logged-in user."""
    found = _who(request, engine)
    if found is None:
        audit_unauthenticated(request, engine, "page-session", "no_session")
        return _not_done(request, None, 401, "not logged in (or the session ended): log in again")
    who, session = found
    if not sessions.csrf_valid(request, session, csrf):
        return _refused(
            request,
            engine,
            who,
            403,
            "the form's CSRF token is missing or wrong: reload the approvals page and try again",
            kind="csrf",
        )
    if decision not in ("approve", "reject"):
        return _not_done(request, who, 422, f"decision: {decision!r} is neither approve nor reject")
    approve = decision == "approve"
    action = decision_action(approve)
    requests = requests_from_settings(request.app.state.settings, engine)
    try:
        with engine.connect() as connection:
            verdict = may_decide(connection, who, str(number), approve)
    except RequestError:
        return _not_done(request, who, 404, f"no deployment request #{number}")
    if not verdict.allowed:
        return _refused(request, engine, who, 403, verdict.reason, action=action)
    if not reason.strip():
        return _not_done(request, who, 422, f"reason: say why you {decision} request #{number}")
    try:
        requests.decide(who.user, str(number), approve, reason.strip())
    except RequestError as error:  # refused by the domain, which audited it
        return _not_done(request, who, 409, str(error))
    return redirect(f"/approvals?decided={number}")
