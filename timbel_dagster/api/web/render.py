"""How the approvals page's answers are made: the templates, the headers every answer
carries, redirects, and the login page (with the SSO button when OIDC sign-in is on).
Shared by the page's routes (`pages.py`) and the SSO sign-in's (`sso.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from timbel_dagster.identity.oidc import OidcVerifier

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True
    )
)
# The page runs no script and loads nothing from elsewhere; it is never framed or cached.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def page(request: Request, name: str, code: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=code, headers=HEADERS)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=HEADERS)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def sso_verifier(request: Request) -> OidcVerifier | None:
    """The app's OIDC verifier when the page's SSO sign-in is configured, else None."""
    oidc: OidcVerifier | None = request.app.state.oidc
    return oidc if oidc is not None and oidc.config.login_enabled else None


def login_page(request: Request, code: int = 200, error: str | None = None) -> Response:
    """The login form; its "Sign in with SSO" link only where SSO sign-in is configured."""
    return page(request, "login.html", code, error=error, sso=sso_verifier(request) is not None)
