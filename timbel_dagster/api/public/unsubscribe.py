"""GET/POST /unsubscribe?token=...: the one-click unsubscribe link of every e-mail (RFC 8058).

Not under /api/v1 and without a bearer token: the signed token of the link is the authority
(`notify.email.unsubscribe_token`, HMAC under TIMBEL_SECRET_KEY). A GET only shows what the
link would do and a button (mail scanners prefetch links: a GET must never unsubscribe); the
POST unsubscribes, as the e-mail's `List-Unsubscribe-Post: List-Unsubscribe=One-Click` header
lets a mail client do directly. The body is that one urlencoded field, parsed here with
urllib (no multipart parser needed).

A link works for TIMBEL_UNSUBSCRIBE_LINK_DAYS after it was sent (the signed token carries
when; `read_unsubscribe_token` says how links from before that are dated). An expired one
answers 410 Gone, on the GET with a page saying how to unsubscribe otherwise, on the POST
changing nothing. Why 410 for the one-click POST: RFC 8058 prescribes no status code (only
that the sender must not redirect, section 3.1), and the POST is often made by the mail
receiver with nobody reading the answer, so the code is the whole message. A 2xx would
claim an unsubscribe that did not happen; 400 says the request was malformed, which it was
not; 410 (RFC 9110, 15.5.11) says this link is gone for good and retrying will not help,
which is what the receiver needs to know (and it may then fall back to another
List-Unsubscribe method or tell its user).
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
from timbel_dagster.notify.email import UnsubscribeLinkExpiredError, read_unsubscribe_token
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


def _days(request: Request) -> int:
    return request.app.state.settings.timbel_unsubscribe_link_days


def _audit_refusal(request: Request, engine: Engine, token: str, status: int, reason: str) -> None:
    """Audited at most once a minute per token (anyone can send garbage here)."""
    throttle: RefusalThrottle = request.app.state.refusal_throttle
    key = "unsubscribe:" + hashlib.sha256(token.encode()).hexdigest()
    if throttle.due(key, dt.datetime.now(dt.UTC)):
        with engine.begin() as connection:
            append_event(
                connection,
                actor=ANONYMOUS,
                action="notify.unsubscribe.refused",
                target=f"{request.method} {UNSUBSCRIBE_PATH}",
                details={"status": status, "reason": reason},
            )


def _refused(
    request: Request, engine: Engine, token: str, reason: str, audit: bool = True
) -> HTMLResponse:
    """400, audited (`_audit_refusal`) unless `audit` is False: the domain has audited the
    refusal already."""
    if audit:
        _audit_refusal(request, engine, token, 400, reason)
    return _page("This unsubscribe link does not work", f"<p>{escape(reason)}.</p>", 400)


def _expired(error: UnsubscribeLinkExpiredError) -> HTMLResponse:
    """410: what the link was for, that it expired, and the ways that still work."""
    what = "all notifications" if error.event == "*" else f"{error.event} notifications"
    return _page(
        "This unsubscribe link has expired",
        f"<p>It would have stopped {escape(what)} to <strong>{escape(error.user)}</strong> by "
        f"{escape(error.channel)}, but it was sent on {error.issued_at:%Y-%m-%d} and expired on "
        f"{error.expired_at:%Y-%m-%d}. Nothing was changed.</p>"
        "<p>To stop these messages:</p><ul>"
        "<li>use the unsubscribe link of a newer message: each one carries a fresh link;</li>"
        "<li>or remove the subscription yourself: <code>timbel notify unsubscribe --user "
        f"{escape(error.user)} --channel {escape(error.channel)} --event {escape(error.event)}"
        "</code>, or <code>DELETE /api/v1/notifications/subscriptions/{id}</code> with your API "
        "token;</li>"
        "<li>or ask a Timbel administrator to do it for you.</li></ul>",
        410,
    )


@router.get(
    UNSUBSCRIBE_PATH,
    summary="The page of an e-mail's unsubscribe link: what it stops, and a button",
    response_class=HTMLResponse,
    responses={200: {"description": "The confirmation page.", **_HTML},
               400: {"description": "The link is garbled or was not signed here.", **_HTML},
               410: {"description": "The link expired (TIMBEL_UNSUBSCRIBE_LINK_DAYS): a page "
                                    "saying how to unsubscribe otherwise.", **_HTML},
               503: {"description": "TIMBEL_SECRET_KEY is not set.", **_HTML},
               **problems(422)},  # no token at all: the API's validation Problem
)  # fmt: skip
def confirm(request: Request, token: Token) -> HTMLResponse:
    """Shows what the link would stop and a button that POSTs; changes nothing (mail
    scanners fetch links before people click them). An expired link shows how to
    unsubscribe otherwise (410)."""
    secret = _secret(request)
    if not secret:
        return _page("Unsubscribe is not available", f"<p>{escape(NO_KEY)}.</p>", 503)
    try:
        user, channel, event = read_unsubscribe_token(token, secret, max_age_days=_days(request))
    except UnsubscribeLinkExpiredError as error:
        return _expired(error)
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
               410: {"description": "The link expired (TIMBEL_UNSUBSCRIBE_LINK_DAYS); nothing "
                                    "changed.", **_HTML},
               503: {"description": "TIMBEL_SECRET_KEY is not set.", **_HTML},
               **problems(422)},  # no token at all: the API's validation Problem
)  # fmt: skip
async def unsubscribe(
    request: Request, engine: Annotated[Engine, Depends(warehouse_engine)], token: Token
) -> HTMLResponse:
    """Unsubscribes the link's user from the link's event on its channel, audited
    `notify.unsubscribe` with that user as actor (via the signed link). Idempotent: the same
    link again changes nothing. An expired link is a 410 that changes nothing (see the
    module docstring for why 410)."""
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
        done = unsubscribe_by_token(engine, token, secret, max_age_days=_days(request))
    except LookupError as error:  # the link's user is gone; `unsubscribe` audited it
        return _refused(request, engine, token, str(error), audit=False)
    except UnsubscribeLinkExpiredError as error:
        _audit_refusal(request, engine, token, 410, str(error))
        return _expired(error)
    except ValueError as error:
        return _refused(request, engine, token, str(error))
    what = "all notifications" if done["event"] == "*" else f"{done['event']} notifications"
    return _page(
        "Unsubscribed",
        f"<p>{escape(str(done['user']))} gets no more {escape(what)} by "
        f"{escape(str(done['channel']))}.</p>",
    )
