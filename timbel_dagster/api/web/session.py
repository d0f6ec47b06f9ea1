"""The approvals page's session: a signed cookie naming who logged in, and the CSRF token
of its forms.

A session is of one of two kinds, both signed with a key derived from TIMBEL_SECRET_KEY:
- `token`: the id of the API token the user pasted (never its secret); the token is checked
  again on every request (`tokens.verify_token_id`), so revoking it or disabling its user
  ends the session at once.
- `oidc`: the user, the issuer's subject and the role they signed in with through SSO
  (`identity/oidc_login.py`); checked again on every request
  (`oidc_login.session_principal`), so disabling the user, or binding the subject to
  someone else, ends it at once, and lowering their role lowers it at once.

An `oidc` session ends at the earlier of SESSION_HOURS and the ID token's `exp`. The issuer
chose how long its statement of who this is may be relied on; a user disabled or removed at
the issuer (but not in Timbel's users table) then loses the page within that time, not up
to 8 hours later. The price: with an issuer whose ID tokens live minutes (Keycloak's
default, 5), the page asks to sign in again that often; that is usually one click, since
the issuer's own session answers without a prompt, and the issuer's ID-token lifetime for
this client is the knob (docs/api.md). The page keeps no refresh token to stretch it.

The cookie is HttpOnly, SameSite=Strict and Secure over https. The CSRF token is an HMAC of
the session cookie: a form rendered for one session is refused in any other.

The sign-in's own cookie (`FLOW_COOKIE`: state, nonce and PKCE verifier) is signed with the
same key, lives 10 minutes, is sent only to /login/oidc/..., and is SameSite=Lax: the
issuer's redirect back is a cross-site top-level navigation, which a Strict cookie would
miss.

Without TIMBEL_SECRET_KEY the key is random per process: sessions end when the server
restarts and cannot span several workers, which is what one developer's `timbel api serve`
needs; a deployment sets the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

COOKIE = "timbel_session"
SESSION_HOURS = 8
PURPOSE = b"timbel/approvals-page-session/v1"
FLOW_COOKIE = "timbel_oidc_flow"
FLOW_PATH = "/login/oidc"
FLOW_SECONDS = 600
# The first field of every signed value: a value signed as one kind is never read as another.
KINDS = ("token", "oidc")
FLOW_KIND = "flow"


@dataclass(frozen=True)
class OidcUser:
    user: str
    subject: str
    role: str


@dataclass(frozen=True)
class Session:
    cookie: str  # the signed value, which the CSRF token is bound to
    token_id: uuid.UUID | None = None  # a `token` session
    oidc: OidcUser | None = None  # an `oidc` session


def derive_key(secret_key: str) -> bytes:
    """HKDF-SHA256 (RFC 5869) of TIMBEL_SECRET_KEY for page sessions and nothing else."""
    extracted = hmac.new(b"timbel", secret_key.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(extracted, PURPOSE + b"\x01", hashlib.sha256).digest()


def page_key(request: Request) -> bytes:
    """The app's session key, made once per app."""
    state = request.app.state
    if getattr(state, "page_key", None) is None:
        secret = state.settings.timbel_secret_key
        value = secret.get_secret_value() if secret is not None else ""
        state.page_key = derive_key(value) if value else secrets.token_bytes(32)
    return state.page_key


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _same(presented: str, expected: str) -> bool:
    # Compared as bytes: compare_digest refuses non-ASCII text, which a forged value may hold.
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def _pack(data: dict[str, Any]) -> str:
    # base64url holds no dot, the signed value's separator.
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode("ascii")


def _unpack(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _signed(request: Request, kind: str, payload: str, until: int) -> str:
    body = f"{kind}.{payload}.{until}"
    return f"{body}.{_sign(page_key(request), body)}"


def _verified(
    request: Request, value: str | None, kinds: tuple[str, ...]
) -> tuple[str, str] | None:
    """(kind, payload) of a value this app signed, of one of `kinds`, not past its time."""
    parts = (value or "").split(".")
    if len(parts) != 4 or parts[0] not in kinds:
        return None
    kind, payload, until, signature = parts
    if not _same(signature, _sign(page_key(request), f"{kind}.{payload}.{until}")):
        return None
    try:
        if int(until) <= time.time():
            return None
    except ValueError:
        return None
    return kind, payload


def _set_session(request: Request, response: Response, kind: str, payload: str, until: int) -> None:
    response.set_cookie(
        COOKIE,
        _signed(request, kind, payload, until),
        max_age=max(until - int(time.time()), 0),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def open_session(request: Request, response: Response, token_id: uuid.UUID) -> None:
    """Set the session cookie for `token_id` on `response`."""
    until = int(time.time()) + SESSION_HOURS * 3600
    _set_session(request, response, "token", token_id.hex, until)


def open_oidc_session(
    request: Request, response: Response, who: OidcUser, id_token_expires: int
) -> None:
    """Set the session cookie for `who`, signed in through SSO, on `response`: it ends at
    the earlier of SESSION_HOURS and the ID token's exp (see the module docstring)."""
    until = min(int(time.time()) + SESSION_HOURS * 3600, id_token_expires)
    payload = _pack({"u": who.user, "s": who.subject, "r": who.role})
    _set_session(request, response, "oidc", payload, until)


def close_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def read_session(request: Request) -> Session | None:
    """The request's session, if its cookie is well-formed, signed by this app and not past
    its time; None otherwise (the token or user itself is checked by the caller)."""
    value = request.cookies.get(COOKIE)
    found = _verified(request, value, KINDS)
    if found is None or value is None:
        return None
    kind, payload = found
    if kind == "token":
        try:
            return Session(value, token_id=uuid.UUID(hex=payload))
        except ValueError:
            return None
    data = _unpack(payload) or {}
    fields = (data.get("u"), data.get("s"), data.get("r"))
    if not all(isinstance(field, str) and field for field in fields):
        return None
    return Session(value, oidc=OidcUser(*fields))


def open_flow(request: Request, response: Response, flow: dict[str, str]) -> None:
    """Keep a sign-in's state, nonce and verifier in the flow cookie for FLOW_SECONDS."""
    response.set_cookie(
        FLOW_COOKIE,
        _signed(request, FLOW_KIND, _pack(flow), int(time.time()) + FLOW_SECONDS),
        max_age=FLOW_SECONDS,
        path=FLOW_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def read_flow(request: Request) -> dict[str, str] | None:
    """The sign-in's values from the flow cookie; None without a valid, fresh one."""
    found = _verified(request, request.cookies.get(FLOW_COOKIE), (FLOW_KIND,))
    data = _unpack(found[1]) if found else None
    if not data or not all(isinstance(v, str) for v in data.values()):
        return None
    return data


def close_flow(request: Request, response: Response) -> None:
    """Drop the flow cookie: each sign-in's values are used once."""
    response.delete_cookie(
        FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def csrf_token(request: Request, session: Session) -> str:
    """The token every form of this session carries."""
    return _sign(page_key(request), f"csrf.{session.cookie}")


def csrf_valid(request: Request, session: Session, presented: str | None) -> bool:
    return bool(presented) and _same(presented or "", csrf_token(request, session))
