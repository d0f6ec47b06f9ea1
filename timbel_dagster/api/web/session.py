"""The approvals page's session: a cookie naming the API token the user logged in with, by
id, signed with a key derived from TIMBEL_SECRET_KEY; and the CSRF token of its forms.

The cookie never holds the token's secret, and the token is checked again on every request
(`tokens.verify_token_id`), so revoking it or disabling its user ends the session at once.
The cookie is HttpOnly, SameSite=Strict and Secure over https, and lives at most
SESSION_HOURS. The CSRF token is an HMAC of the session cookie: a form rendered for one
session is refused in any other.

Without TIMBEL_SECRET_KEY the key is random per process: sessions end when the server
restarts and cannot span several workers, which is what one developer's `timbel api serve`
needs; a deployment sets the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

COOKIE = "timbel_session"
SESSION_HOURS = 8
PURPOSE = b"timbel/approvals-page-session/v1"


@dataclass(frozen=True)
class Session:
    token_id: uuid.UUID
    cookie: str  # the signed value, which the CSRF token is bound to


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


def open_session(request: Request, response: Response, token_id: uuid.UUID) -> None:
    """Set the session cookie for `token_id` on `response`."""
    expires = int(time.time()) + SESSION_HOURS * 3600
    body = f"{token_id.hex}.{expires}"
    response.set_cookie(
        COOKIE,
        f"{body}.{_sign(page_key(request), body)}",
        max_age=SESSION_HOURS * 3600,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def close_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def read_session(request: Request) -> Session | None:
    """The request's session, if its cookie is well-formed, signed by this app and not past
    its time; None otherwise (the token itself is checked by the caller)."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 3:
        return None
    token_hex, expires, signature = parts
    if not _same(signature, _sign(page_key(request), f"{token_hex}.{expires}")):
        return None
    try:
        token_id, until = uuid.UUID(hex=token_hex), int(expires)
    except ValueError:
        return None
    if until <= time.time():
        return None
    return Session(token_id, value)


def csrf_token(request: Request, session: Session) -> str:
    """The token every form of this session carries."""
    return _sign(page_key(request), f"csrf.{session.cookie}")


def csrf_valid(request: Request, session: Session, presented: str | None) -> bool:
    return bool(presented) and _same(presented or "", csrf_token(request, session))
