"""GET/POST /unsubscribe?token=...: the one-click unsubscribe link of every e-mail (RFC 8058).

Not under /api/v1 and without a bearer token: the signed token of the link is the authority
(`notify.email.unsubscribe_token`, HMAC under TIMBEL_SECRET_KEY). A GET only shows what the
link would do and a button (mail scanners prefetch links: a GET must never unsubscribe); the
POST unsubscribes, as the e-mail's `List-Unsubscribe-Post: List-Unsubscribe=One-Click` header
lets a mail client do directly. The body is that one urlencoded field, parsed here with
urllib (no multipart parser needed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from html import escape
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import ANONYMOUS, RefusalThrottle, warehouse_engine
from timbel_dagster.api.errors import problems
from timbel_dagster.notify.dispatch import UNSUBSCRIBE_PATH
from timbel_dagster.notify.email import read_unsubscribe_token
from timbel_dagster.notify.subscriptions import unsubscribe_by_token
from timbel_dagster.warehouse.audit.chain import append_event

ONE_CLICK = "One-Click"
MAX_BODY = 1024  # the one field RFC 8058 sends, with room to spare
NO_KEY = "unsubscribe links cannot be checked here: TIMBEL_SECRET_KEY is not set"
# The token is in the URL: no Referer leaks it, no cache keeps the page, and no other site
# may frame the button to make someone click it.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
Token = Annotated[
    str, Query(min_length=1, max_length=2048, description="The signed token of the link.")
]

router = APIRouter(tags=["unsubscribe"])


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _secret(request: Request) -> str | None:
    key = request.app.state.settings.timbel_secret_key
    return key.get_secret_value() if key else None


def _refused(
    request: Request, engine: Engine, token: str, reason: str, audit: bool = True
) -> HTMLResponse:
    """400, audited at most once a minute per token (anyone can send garbage here); `audit`
    False when the domain has audited the refusal already."""
    throttle: RefusalThrottle = request.app.state.refusal_throttle
    key = "unsubscribe:" + hashlib.sha256(token.encode()).hexdigest()
    if audit and throttle.due(key, dt.datetime.now(dt.UTC)):
        with engine.begin() as connection:
            append_event(
                connection,
                actor=ANONYMOUS,
                action="notify.unsubscribe.refused",
                target=f"{request.method} {UNSUBSCRIBE_PATH}",
                details={"status": 400, "reason": reason},
            )
    return _page("This unsubscribe link does not work", f"<p>{escape(reason)}.</p>", 400)


@router.get(
    UNSUBSCRIBE_PATH,
    summary="The page of an e-mail's unsubscribe link: what it stops, and a button",
    response_class=HTMLResponse,
    responses={200: {"description": "The confirmation page.", **_HTML},
               400: {"description": "The link is garbled or was not signed here.", **_HTML},
               503: {"description": "TIMBEL_SECRET_KEY is not set.", **_HTML},
               **problems(422)},  # no token at all: the API's validation Problem
)  # fmt: skip
def confirm(request: Request, token: Token) -> HTMLResponse:
    """Shows what the link would stop and a button that POSTs; changes nothing (mail
    scanners fetch links before people click them)."""
    secret = _secret(request)
    if not secret:
        return _page("Unsubscribe is not available", f"<p>{escape(NO_KEY)}.</p>", 503)
    try:
        user, channel, event = read_unsubscribe_token(token, secret)
    except ValueError as error:
        return _page("This unsubscribe link does not work", f"<p>{escape(str(error))}.</p>", 400)
    what = "all notifications" if event == "*" else f"{event} notifications"
    action = f"{UNSUBSCRIBE_PATH}?token={quote(token, safe='')}"
    return _page(
        "Unsubscribe",
        f"<p>Stop sending {escape(what)} to <strong>{escape(user)}</strong> by "
        f"{escape(channel)}?</p>"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="List-Unsubscribe" value="{ONE_CLICK}">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post(
    UNSUBSCRIBE_PATH,
    summary="Unsubscribe, as the link's token says (RFC 8058 one-click)",
    response_class=HTMLResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"List-Unsubscribe": {"type": "string", "enum": [ONE_CLICK]}},
                        "required": ["List-Unsubscribe"],
                    }
                }
            },
        }
    },
    responses={200: {"description": "Unsubscribed (or already were).", **_HTML},
               400: {"description": "Not `List-Unsubscribe=One-Click`, or a link that is "
                                    "garbled or was not signed here; nothing changed.", **_HTML},
               503: {"description": "TIMBEL_SECRET_KEY is not set.", **_HTML},
               **problems(422)},  # no token at all: the API's validation Problem
)  # fmt: skip
async def unsubscribe(
    request: Request, engine: Annotated[Engine, Depends(warehouse_engine)], token: Token
) -> HTMLResponse:
    """Unsubscribes the link's user from the link's event on its channel, audited
    `notify.unsubscribe` with that user as actor (via the signed link). Idempotent: the same
    link again changes nothing."""
    body = await request.body()
    if len(body) > MAX_BODY:
        return _refused(request, engine, token, "the body is not List-Unsubscribe=One-Click")
    try:
        fields = parse_qs(body.decode("latin-1"), max_num_fields=4)
    except ValueError:  # more fields than a one-click body has (found by the contract test)
        fields = {}
    if fields.get("List-Unsubscribe") != [ONE_CLICK]:
        return _refused(request, engine, token, "the body is not List-Unsubscribe=One-Click")
    secret = _secret(request)
    if not secret:
        return _page("Unsubscribe is not available", f"<p>{escape(NO_KEY)}.</p>", 503)
    try:
        done = unsubscribe_by_token(engine, token, secret)
    except LookupError as error:  # the link's user is gone; `unsubscribe` audited it
        return _refused(request, engine, token, str(error), audit=False)
    except ValueError as error:
        return _refused(request, engine, token, str(error))
    what = "all notifications" if done["event"] == "*" else f"{done['event']} notifications"
    return _page(
        "Unsubscribed",
        f"<p>{escape(str(done['user']))} gets no more {escape(what)} by "
        f"{escape(str(done['channel']))}.</p>",
    )
