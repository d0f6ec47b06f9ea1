"""The approvals page's "Sign in with SSO": GET /login/oidc sends the browser to the OIDC
issuer, GET /login/oidc/callback takes it back and opens a page session
(`identity/oidc_login.py` says what is checked; `session.py` how long the session lives).

Every refusal answers the login page with what was wrong (400: not this browser's sign-in
or a malformed answer; 401: the issuer, the code, the ID token or the users table refused;
502: the issuer could not be reached) and is audited as `api.refused` by anonymous, like a
bad token on the login form, at most once a minute per reason and client address.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import audit_unauthenticated, warehouse_engine
from timbel_dagster.api.web import session as sessions
from timbel_dagster.api.web.render import HEADERS, client_ip, login_page, page, sso_verifier
from timbel_dagster.identity.oidc import OidcRefusedError
from timbel_dagster.identity.oidc_login import (
    CALLBACK_PATH,
    Flow,
    authorization_url,
    sign_in,
    state_matches,
)

router = APIRouter(include_in_schema=False)
EngineDep = Annotated[Engine, Depends(warehouse_engine)]
STATUS = {"state": 400, "no_code": 400, "issuer_error": 502}  # any other reason: 401
NOT_CONFIGURED = "SSO sign-in is not configured here: log in with an API token"
# What the issuer says in error_description is shown and audited, within reason.
MAX_ISSUER_TEXT = 300


def _refused(request: Request, engine: Engine, reason: str, message: str) -> Response:
    status = STATUS.get(reason, 401)
    key = f"sso:{reason}:{client_ip(request) or 'unknown'}"
    audit_unauthenticated(request, engine, key, reason, status=status, message=message)
    response = login_page(request, status, f"SSO sign-in refused: {message}")
    sessions.close_flow(request, response)  # each sign-in's values are used once
    return response


@router.get("/login/oidc")
def sso_start(request: Request, engine: EngineDep) -> Response:
    """Send the browser to the issuer with a new sign-in's state, nonce and PKCE
    challenge, which a signed cookie keeps for the callback."""
    oidc = sso_verifier(request)
    if oidc is None:
        return login_page(request, 404, NOT_CONFIGURED)
    flow = Flow.new()
    try:
        url = authorization_url(oidc, flow)
    except OidcRefusedError as error:
        return _refused(request, engine, "issuer_error", str(error))
    response = RedirectResponse(url, status_code=303, headers=HEADERS)
    sessions.open_flow(request, response, asdict(flow))
    return response


def _flow(request: Request) -> Flow | None:
    stored = sessions.read_flow(request)
    if stored is None or set(stored) != {"state", "nonce", "verifier"}:
        return None
    return Flow(**stored)


@router.get(CALLBACK_PATH)
def sso_callback(
    request: Request,
    engine: EngineDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    """Check the issuer's answer against this browser's sign-in, redeem the code, and open
    the page session of the ID token's user."""
    oidc = sso_verifier(request)
    if oidc is None:
        return login_page(request, 404, NOT_CONFIGURED)
    flow = _flow(request)
    if flow is None:
        return _refused(
            request, engine, "state",
            "no sign-in was started in this browser, or it took over 10 minutes: "
            "start again with Sign in with SSO",
        )  # fmt: skip
    if not state_matches(flow, state):
        return _refused(
            request, engine, "state",
            "the answer's state is not the one this sign-in sent (an answer to another "
            "sign-in, or a forged one): start again with Sign in with SSO",
        )  # fmt: skip
    if error:
        said = f": {error_description}" if error_description else ""
        text = f"the issuer refused the sign-in ({error}{said})"[:MAX_ISSUER_TEXT]
        return _refused(request, engine, "issuer_refused", text)
    if not code:
        return _refused(request, engine, "no_code", "the issuer's answer has no code")
    try:
        signed = sign_in(oidc, engine, code, flow)
    except OidcRefusedError as refusal:
        return _refused(request, engine, refusal.reason, str(refusal))
    who = signed.principal
    # A page, not a redirect: this answer ends a navigation that began at the issuer (another
    # site), and a browser sends no SameSite=Strict cookie along such a redirect chain, so
    # /approvals would not see the new session. The refresh is a navigation of our own page.
    response = page(request, "signed_in.html", user=who.user, role=who.role)
    sessions.close_flow(request, response)
    sessions.open_oidc_session(
        request, response, sessions.OidcUser(who.user, signed.subject, who.role), signed.expires
    )
    return response
