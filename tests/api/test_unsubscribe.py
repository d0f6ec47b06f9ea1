"""GET/POST /unsubscribe?token=...: the e-mail's link reaches this route without an API
token; a GET only shows the page; the one-click POST unsubscribes (idempotent, audited as the
link's user); a tampered token or a wrong body is a 400 that changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import audit_events
from timbel_dagster.api.app import create_app
from timbel_dagster.notify import email
from timbel_dagster.notify.dispatch import Dispatcher
from timbel_dagster.notify.email import SmtpSender, unsubscribe_token
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.settings import SettingsError, load_settings
from timbel_dagster.warehouse.schema.notify import Subscription

SECRET = "unsubscribe-test-secret"
PUBLIC = "https://timbel.example.com"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def client(engine, warehouse_url: str):
    settings = load_settings(timbel_database_url=warehouse_url, timbel_secret_key=SECRET)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def link(engine) -> str:
    """The path and query of the link the e-mail to `dev` about alert_fired carries."""
    subscribe(engine, "dev", "email", "alert")
    url = Dispatcher(engine, {}, public_url=PUBLIC, secret_key=SECRET).unsubscribe_url(
        "dev", "email", "alert_fired"
    )
    assert url is not None and url.startswith(f"{PUBLIC}/unsubscribe?token=")
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _subscriptions(engine) -> dict[str, bool]:
    with engine.connect() as connection:
        rows = connection.execute(select(Subscription.event, Subscription.active)).all()
    return dict(tuple(row) for row in rows)


def test_email_headers_carry_the_link(link: str) -> None:
    sender = SmtpSender("localhost", 25, "none", None, None, "timbel@example.com")
    message = sender.build("dev@example.com", "s", "<p>h</p>", "t", unsubscribe_url=PUBLIC + link)
    assert message["List-Unsubscribe"] == f"<{PUBLIC}{link}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_get_shows_a_button_and_changes_nothing(client, engine, link: str) -> None:
    page = client.get(link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "alert_fired notifications" in page.text and "<strong>dev</strong>" in page.text
    assert '<form method="post"' in page.text and 'value="One-Click"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert _subscriptions(engine) == {"alert": True}
    assert audit_events(engine, "notify.unsubscribe") == []


def test_one_click_post_unsubscribes_once(client, engine, link: str) -> None:
    done = client.post(link, data=ONE_CLICK)
    assert done.status_code == 200, done.text
    assert "dev gets no more alert_fired notifications by email" in done.text
    assert _subscriptions(engine) == {"alert": True, "alert_fired": False}
    again = client.post(link, data=ONE_CLICK)
    assert again.status_code == 200
    events = audit_events(engine, "notify.unsubscribe")
    assert [(actor, target) for actor, target, _ in events] == [("dev", "dev"), ("dev", "dev")]
    assert events[0][2]["via"] == "signed link" and events[0][2]["changed"] is True
    assert events[1][2]["changed"] is False


def _tampered(link: str) -> str:
    token = link.split("token=")[1]
    forged = unsubscribe_token("viewer", "email", "*", "not-the-secret")
    return {"tampered": link[:-2] + ("AA" if not link.endswith("AA") else "BB"),
            "forged": f"/unsubscribe?token={forged}", "garbage": "/unsubscribe?token=x.y",
            "unsigned": f"/unsubscribe?token={token.split('.')[0]}"}  # fmt: skip


@pytest.mark.parametrize("kind", ["tampered", "forged", "garbage", "unsigned"])
def test_bad_token_is_400_and_changes_nothing(client, engine, link: str, kind: str) -> None:
    bad = _tampered(link)[kind]
    response = client.post(bad, data=ONE_CLICK)
    assert response.status_code == 400, response.text
    assert "invalid or tampered unsubscribe link" in response.text
    assert client.get(bad).status_code == 400
    assert _subscriptions(engine) == {"alert": True}
    assert audit_events(engine, "notify.unsubscribe") == []
    [(actor, _, details)] = audit_events(engine, "notify.unsubscribe.refused")
    assert actor == "anonymous" and details["status"] == 400


@pytest.mark.parametrize("body", [{}, {"List-Unsubscribe": "yes"}])
def test_post_without_one_click_body_is_400(client, engine, link: str, body) -> None:
    response = client.post(link, data=body)
    assert response.status_code == 400
    assert "List-Unsubscribe=One-Click" in response.text
    assert _subscriptions(engine) == {"alert": True}


def test_missing_token_is_422(client) -> None:
    assert client.post("/unsubscribe", data=ONE_CLICK).status_code == 422


def test_without_secret_key_nothing_can_be_checked(engine, warehouse_url, link: str) -> None:
    settings = load_settings(timbel_database_url=warehouse_url)
    with TestClient(create_app(settings)) as plain:
        response = plain.post(link, data=ONE_CLICK)
    assert response.status_code == 503 and "TIMBEL_SECRET_KEY is not set" in response.text
    assert _subscriptions(engine) == {"alert": True}


def test_a_body_of_many_fields_is_refused_not_a_server_error(client) -> None:
    # Schemathesis found it: parse_qs raised on more fields than a one-click body has.
    response = client.post(
        "/unsubscribe?token=x",
        content="=null&=null&=null&0=null&List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400


def _link_for(token: str) -> str:
    return f"/unsubscribe?token={quote(token, safe='')}"


def _legacy(user: str, channel: str, event: str) -> str:
    """A token signed before tokens carried an issued-at (three fields)."""
    payload = json.dumps([user, channel, event], separators=(",", ":")).encode()
    return f"{email._b64(payload)}.{email._b64(email._signature(payload, SECRET))}"


@pytest.fixture
def sent_long_ago(engine) -> str:
    """The link of an e-mail to `dev` about alert_fired sent 91 days ago (default 90)."""
    subscribe(engine, "dev", "email", "alert")
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=91)
    return _link_for(unsubscribe_token("dev", "email", "alert_fired", SECRET, issued_at=issued))


def test_an_expired_link_shows_how_to_unsubscribe_otherwise(
    client, engine, sent_long_ago: str
) -> None:
    page = client.get(sent_long_ago)
    assert page.status_code == 410 and page.headers["content-type"].startswith("text/html")
    assert "This unsubscribe link has expired" in page.text
    assert "alert_fired notifications to <strong>dev</strong> by email" in page.text
    assert "timbel notify unsubscribe --user dev --channel email --event alert_fired" in page.text
    assert "DELETE /api/v1/notifications/subscriptions/{id}" in page.text
    assert "newer message" in page.text and "<form" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert _subscriptions(engine) == {"alert": True}
    assert audit_events(engine, "notify.unsubscribe.refused") == []  # a GET changes nothing


def test_an_expired_one_click_post_is_410_and_changes_nothing(
    client, engine, sent_long_ago: str
) -> None:
    response = client.post(sent_long_ago, data=ONE_CLICK)
    assert response.status_code == 410, response.text
    assert "has expired" in response.text and "Nothing was changed" in response.text
    assert _subscriptions(engine) == {"alert": True}
    assert audit_events(engine, "notify.unsubscribe") == []
    [(actor, _, details)] = audit_events(engine, "notify.unsubscribe.refused")
    assert (actor, details["status"]) == ("anonymous", 410)
    assert details["reason"].startswith("this unsubscribe link expired on ")


def test_the_lifetime_is_the_setting(engine, warehouse_url: str, sent_long_ago: str) -> None:
    settings = load_settings(timbel_database_url=warehouse_url, timbel_secret_key=SECRET,
                             timbel_unsubscribe_link_days=120)  # fmt: skip
    with TestClient(create_app(settings)) as longer:
        assert longer.get(sent_long_ago).status_code == 200
        assert longer.post(sent_long_ago, data=ONE_CLICK).status_code == 200
    assert _subscriptions(engine) == {"alert": True, "alert_fired": False}


@pytest.mark.parametrize("days", [0, 29, 3651])
def test_a_lifetime_under_30_days_or_absurdly_long_is_refused(days: int) -> None:
    with pytest.raises(SettingsError, match="TIMBEL_UNSUBSCRIBE_LINK_DAYS"):
        load_settings(timbel_unsubscribe_link_days=days)


def test_a_legacy_link_works_until_its_documented_date(engine, warehouse_url: str) -> None:
    """A link without an issued-at counts as sent on 2026-12-05 (`email.LEGACY_ISSUED_AT`):
    it works while that day is within the lifetime. The day it expires is tested with a
    fixed clock in tests/notify/test_email.py; here the lifetime is set from today's date so
    that the test does not depend on when it runs."""
    subscribe(engine, "dev", "email", "alert")
    link = _link_for(_legacy("dev", "email", "alert_fired"))
    age = (dt.datetime.now(dt.UTC) - email.LEGACY_ISSUED_AT).days
    alive = load_settings(timbel_database_url=warehouse_url, timbel_secret_key=SECRET,
                          timbel_unsubscribe_link_days=max(30, age + 2))  # fmt: skip
    with TestClient(create_app(alive)) as client:
        assert client.get(link).status_code == 200
        assert client.post(link, data=ONE_CLICK).status_code == 200
    assert _subscriptions(engine) == {"alert": True, "alert_fired": False}
