"""Signing in to the approvals page through the OIDC issuer: the Authorization Code flow
with PKCE (RFC 7636, S256), `state` and `nonce` (OIDC Core 3.1).

The page starts a `Flow` (three random values), keeps it in a signed cookie and sends the
browser to the issuer's authorization endpoint with `state`, `nonce` and the verifier's
S256 challenge. The callback checks `state` (the answer is to this browser's sign-in, not
one an attacker started: login CSRF), then `sign_in` redeems the code at the token endpoint
with the verifier (a code stolen on its way back is useless without it), checks the ID token
(`OidcVerifier.id_token_claims`: signature, iss, aud = the page's client id, exp, nonce) and
finds the user as a bearer JWT's (`OidcVerifier.principal_of`). The session then names the
user and subject, and `session_principal` checks them again on every request.

Each refusal is an `OidcRefusedError` whose `reason` is one word for the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx

from timbel_dagster.identity.oidc import (
    HTTP_TIMEOUT_SECONDS,
    ROLE_ORDER,
    OidcRefusedError,
    OidcVerifier,
)
from timbel_dagster.identity.principal import Principal

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

CALLBACK_PATH = "/login/oidc/callback"


@dataclass(frozen=True)
class Flow:
    """One sign-in's secrets: 256 random bits each (RFC 7636 asks 43-128 characters)."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Flow:
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32))


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    subject: str
    expires: int  # the ID token's exp (Unix seconds)


def challenge(verifier: str) -> str:
    """The S256 code challenge: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def redirect_uri(oidc: OidcVerifier) -> str:
    """Where the issuer sends the browser back: TIMBEL_PUBLIC_URL + CALLBACK_PATH, the URI
    to register at the issuer."""
    return f"{oidc.config.public_url}{CALLBACK_PATH}"


def authorization_url(oidc: OidcVerifier, flow: Flow) -> str:
    """The issuer's authorization endpoint with this flow's parameters.

    Raises:
        OidcRefusedError: "invalid", the discovery document is unreachable or lacks it.
    """
    endpoint = oidc.endpoint("authorization_endpoint")
    query = urlencode(
        {
            "response_type": "code",
            "client_id": oidc.config.client_id,
            "redirect_uri": redirect_uri(oidc),
            "scope": oidc.config.scopes,
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": challenge(flow.verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def state_matches(flow: Flow, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(
        (presented or "").encode("utf-8"), flow.state.encode("utf-8")
    )


def redeem(oidc: OidcVerifier, code: str, flow: Flow) -> str:
    """The ID token the token endpoint gives for `code` and the flow's verifier.

    The client authenticates with HTTP Basic when it has a secret (client_secret_basic,
    the default every issuer supports); a public client sends its id and relies on PKCE.

    Raises:
        OidcRefusedError: "code_refused" (the issuer's error, e.g. invalid_grant: the code
            was used already, expired, or the verifier does not match), "issuer_error"
            (unreachable, or an answer without an id_token).
    """
    endpoint = oidc.endpoint("token_endpoint")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(oidc),
        "code_verifier": flow.verifier,
    }
    auth = None
    config = oidc.config
    if config.client_secret is not None and config.client_id is not None:
        # RFC 6749 2.3.1: both are form-urlencoded before Basic, so a secret with a colon
        # or a percent sign reaches the issuer intact.
        auth = httpx.BasicAuth(
            quote(config.client_id, safe=""), quote(config.client_secret, safe="")
        )
    else:
        form["client_id"] = config.client_id or ""
    try:
        response = httpx.post(endpoint, data=form, auth=auth, timeout=HTTP_TIMEOUT_SECONDS)
        body = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise OidcRefusedError(
            "issuer_error", f"the issuer's token endpoint {endpoint} did not answer: {error}"
        ) from None
    if response.status_code != 200 or not isinstance(body, dict):
        error, why = _error_of(body)
        raise OidcRefusedError(
            "code_refused",
            f"the issuer refused the sign-in code ({error}{why}): it was used already, "
            "expired, or not made for this sign-in; sign in again",
        )
    token = body.get("id_token")
    if not isinstance(token, str) or not token:
        raise OidcRefusedError(
            "issuer_error", "the issuer's token answer has no id_token (is openid a scope?)"
        )
    return token


def _error_of(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        return "no error code", ""
    description = body.get("error_description")
    return str(body.get("error", "no error code")), f": {description}" if description else ""


def sign_in(oidc: OidcVerifier, engine: Engine, code: str, flow: Flow) -> SignedIn:
    """Redeem `code`, check the ID token against `flow`, and find its user.

    Raises:
        OidcRefusedError: see `redeem` and `OidcVerifier.id_token_claims`; unknown_user,
            user_disabled, service_account (a service account never signs in to the page:
            it acts only through its API tokens) or no_role as for a bearer JWT.
    """
    claims = oidc.id_token_claims(redeem(oidc, code, flow), flow.nonce)
    who = oidc.principal_of(engine, claims, via="session")
    return SignedIn(who, str(claims["sub"]), int(claims["exp"]))


def session_principal(
    oidc: OidcVerifier, engine: Engine, user: str, subject: str, role: str
) -> Principal:
    """The principal of a page session opened by signing in as `user` (`subject`, `role`),
    checked again as at sign-in: the subject must still lead to `user` (bound to them, or
    to nobody while the user claim named them) and the user must still be enabled. The role
    is the lower of the one signed in with and the table's now: lowering a role in the table
    takes effect at once, raising it at the next sign-in.

    Raises:
        OidcRefusedError: unknown_user (or the subject now belongs to another user),
            user_disabled, service_account (the user became one since), no_role.
    """
    found = oidc.user_of(engine, {"sub": subject, oidc.config.user_claim: user}, via="session")
    if found.user != user:
        raise OidcRefusedError(
            "unknown_user", f"OIDC subject {subject!r} now belongs to user {found.user!r}"
        )
    if role not in ROLE_ORDER:
        raise OidcRefusedError("no_role", f"the session's role {role!r} is no Timbel role")
    return replace(found, role=min(role, found.role, key=ROLE_ORDER.index))
