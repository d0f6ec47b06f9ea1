"""The dispatcher end to end: a real warehouse (SQLite and PostgreSQL), a loopback Slack
receiver and a real SMTP server; time only moves when a test advances the clock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select

from tests.notify.conftest import START, Clock, Inbox, free_port
from timbel_dagster.notify.dispatch import Dispatcher, backoff
from timbel_dagster.notify.email import SmtpSender, read_unsubscribe_token
from timbel_dagster.notify.messages import Message
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.warehouse.schema.notify import Notification

HOOK = "/services/T0TEAM/B0HOOK/s3cr3tWebhookToken"
PUBLIC = "https://timbel.example.com/"
KEY = "test-secret-key"


def _message(**changes: Any) -> Message:
    values: dict[str, Any] = {
        "event": "pipeline_failed",
        "key": "pipeline:shop/api:42:failed",
        "title": "shop/api #42 failed",
        "severity": "high",
        "context": {"pipeline": "shop/api", "branch": "main"},
        "url": "https://ci.example.com/job/shop-api/42/",
    }
    values.update(changes)
    return Message(**values)


def _email(port: int) -> SmtpSender:
    return SmtpSender("127.0.0.1", port, "none", None, None, "timbel@example.com", timeout=5)


def _dispatcher(engine: Any, clock: Clock, **options: Any) -> Dispatcher:
    options.setdefault("max_attempts", 5)
    options.setdefault("channels", {})
    return Dispatcher(engine, clock=clock, **options)


def _slack(httpserver: HTTPServer) -> SlackWebhook:
    return SlackWebhook(httpserver.url_for(HOOK), timeout_seconds=5)


def _rows(engine: Any) -> list[Any]:
    table = Notification.__table__
    with engine.connect() as connection:
        return connection.execute(select(table).order_by(table.c.channel, table.c.recipient)).all()


def _posted(httpserver: HTTPServer) -> list[dict]:
    return [json.loads(request.data) for request, _ in httpserver.log]


@pytest.mark.parametrize(
    ("attempts", "retry_after", "seconds"),
    [
        (1, None, 30),
        (2, None, 60),
        (3, None, 120),
        (7, None, 1920),
        (8, None, 3600),
        (20, None, 3600),
        (1, 120.0, 120),
        (4, 0.5, 0.5),
    ],
)
def test_backoff(attempts: int, retry_after: float | None, seconds: float) -> None:
    assert backoff(attempts, retry_after) == dt.timedelta(seconds=seconds)


def test_slack_200_is_sent_with_block_kit_and_mentions(
    engine: Any, clock: Clock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    subscribe(engine, "ann", "slack", "pipeline")
    subscribe(engine, "bob", "slack")
    dispatcher = _dispatcher(engine, clock, channels={"slack": _slack(httpserver)})

    [result] = dispatcher.send(_message(mentions=("cid", "zed", "ann")))

    assert (result.channel, result.recipient, result.status) == ("slack", "webhook", "sent")
    assert (result.attempts, result.sent_at, result.next_attempt_at) == (1, START, None)
    [payload] = _posted(httpserver)
    header, section, context, actions = payload["blocks"]
    assert header["text"]["text"] == "shop/api #42 failed"
    assert section["text"]["text"].splitlines()[0] == "<@U0ANN> @bob <@U0CID> @zed"
    assert section["fields"][0] == {"type": "mrkdwn", "text": "*Pipeline*\nshop/api"}
    assert context["elements"][0]["text"].startswith("*high*")
    assert actions["elements"][0]["url"] == "https://ci.example.com/job/shop-api/42/"
    [row] = _rows(engine)
    assert row.payload == payload and row.subject == "shop/api #42 failed"
    assert row.dedupe_key == "slack|webhook|pipeline:shop/api:42:failed"


def test_slack_400_fails_at_once_and_is_never_retried(
    engine: Any, clock: Clock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(HOOK).respond_with_data("invalid_payload", status=400)
    subscribe(engine, "ann", "slack")
    dispatcher = _dispatcher(engine, clock, channels={"slack": _slack(httpserver)})

    [result] = dispatcher.send(_message())

    assert (result.status, result.attempts, result.next_attempt_at) == ("failed", 1, None)
    assert "HTTP 400 invalid_payload" in (result.last_error or "")
    assert "s3cr3t" not in (result.last_error or "")
    clock.advance(days=1)
    assert dispatcher.retry_due() == []
    assert len(httpserver.log) == 1


def test_slack_500_then_200_retries_after_the_backoff(
    engine: Any, clock: Clock, httpserver: HTTPServer
) -> None:
    httpserver.expect_oneshot_request(HOOK).respond_with_data("oops", status=500)
    httpserver.expect_request(HOOK).respond_with_data("ok")
    subscribe(engine, "ann", "slack")
    dispatcher = _dispatcher(engine, clock, channels={"slack": _slack(httpserver)})

    [first] = dispatcher.send(_message())
    assert (first.status, first.attempts) == ("retrying", 1)
    assert first.next_attempt_at == START + dt.timedelta(seconds=30)
    assert "HTTP 500" in (first.last_error or "")

    assert dispatcher.retry_due() == []  # not due yet
    clock.advance(seconds=29)
    assert dispatcher.retry_due() == []
    clock.advance(seconds=1)
    [second] = dispatcher.retry_due()
    assert (second.id, second.status, second.attempts) == (first.id, "sent", 2)
    assert (second.sent_at, second.last_error, second.next_attempt_at) == (clock.now, None, None)
    first_post, second_post = _posted(httpserver)
    assert first_post == second_post  # re-sent from the stored payload
    assert dispatcher.retry_due() == []


def test_slack_429_waits_as_long_as_retry_after_says(
    engine: Any, clock: Clock, httpserver: HTTPServer
) -> None:
    httpserver.expect_oneshot_request(HOOK).respond_with_data(
        "rate_limited", status=429, headers={"Retry-After": "120"}
    )
    httpserver.expect_request(HOOK).respond_with_data("ok")
    subscribe(engine, "ann", "slack")
    dispatcher = _dispatcher(engine, clock, channels={"slack": _slack(httpserver)})

    [first] = dispatcher.send(_message())
    assert first.status == "retrying"
    assert first.next_attempt_at == START + dt.timedelta(seconds=120)
    clock.advance(seconds=119)
    assert dispatcher.retry_due() == []
    clock.advance(seconds=1)
    assert [r.status for r in dispatcher.retry_due()] == ["sent"]


def test_gives_up_after_max_attempts(engine: Any, clock: Clock, httpserver: HTTPServer) -> None:
    httpserver.expect_request(HOOK).respond_with_data("oops", status=503)
    subscribe(engine, "ann", "slack")
    dispatcher = _dispatcher(engine, clock, channels={"slack": _slack(httpserver)}, max_attempts=3)

    assert [r.status for r in dispatcher.send(_message())] == ["retrying"]
    clock.advance(seconds=30)
    [second] = dispatcher.retry_due()
    assert (second.status, second.attempts) == ("retrying", 2)
    assert second.next_attempt_at == clock.now + dt.timedelta(seconds=60)
    clock.advance(seconds=60)
    [third] = dispatcher.retry_due()
    assert (third.status, third.attempts, third.next_attempt_at) == ("failed", 3, None)
    assert (third.last_error or "").endswith("(gave up after 3 attempts)")
    clock.advance(days=1)
    assert dispatcher.retry_due() == []
    assert len(httpserver.log) == 3


def test_email_to_each_subscriber_with_a_personal_unsubscribe_link(
    engine: Any, clock: Clock, smtp_server: Inbox
) -> None:
    for user in ("ann", "bob", "cid"):  # cid has no e-mail address
        subscribe(engine, user, "email", "pipeline_failed")
    dispatcher = _dispatcher(
        engine,
        clock,
        channels={"email": _email(smtp_server.port)},
        public_url=PUBLIC,
        secret_key=KEY,
    )

    results = dispatcher.send(_message())

    assert [(r.recipient, r.status) for r in results] == [
        ("ann@example.com", "sent"),
        ("bob@example.com", "sent"),
        ("cid", "skipped"),
    ]
    assert "cid has no e-mail address" in (results[2].last_error or "")
    by_to = {message["To"]: message for message in smtp_server.messages}
    assert sorted(by_to) == ["ann@example.com", "bob@example.com"]
    for user, to in (("ann", "ann@example.com"), ("bob", "bob@example.com")):
        message = by_to[to]
        assert message.get_content_type() == "multipart/alternative"
        assert message["Subject"] == "[Timbel] Pipeline failed: shop/api #42 failed"
        link = message["List-Unsubscribe"].strip("<>")
        assert link.startswith("https://timbel.example.com/unsubscribe?token=")
        [token] = parse_qs(urlsplit(link).query)["token"]
        assert read_unsubscribe_token(token, KEY) == (user, "email", "pipeline_failed")
        html = message.get_body(("html",)).get_content()
        assert link in html.replace("&amp;", "&")
        with pytest.raises(ValueError, match="invalid or tampered"):
            read_unsubscribe_token(token, "another key")
    row_ids = {r.recipient: r.id for r in results}
    assert by_to["ann@example.com"]["Message-ID"] == f"<{row_ids['ann@example.com']}@example.com>"


def test_email_without_public_url_or_key_has_no_link(
    engine: Any, clock: Clock, smtp_server: Inbox
) -> None:
    subscribe(engine, "ann", "email")
    dispatcher = _dispatcher(
        engine, clock, channels={"email": _email(smtp_server.port)}, public_url=PUBLIC
    )
    assert [r.status for r in dispatcher.send(_message())] == ["sent"]
    [message] = smtp_server.messages
    assert message["List-Unsubscribe"] is None
    assert "nsubscribe" not in message.get_body(("plain",)).get_content()


def test_smtp_down_is_retried_until_it_is_back(engine: Any, clock: Clock) -> None:
    from aiosmtpd.controller import Controller

    port = free_port()
    subscribe(engine, "ann", "email")
    dispatcher = _dispatcher(engine, clock, channels={"email": _email(port)})

    [first] = dispatcher.send(_message())
    assert (first.status, first.attempts) == ("retrying", 1)
    assert "smtp 127.0.0.1" in (first.last_error or "")

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.advance(seconds=30)
        [second] = dispatcher.retry_due()
    finally:
        controller.stop()
    assert (second.status, second.attempts) == ("sent", 2)
    assert [m["To"] for m in inbox.messages] == ["ann@example.com"]


def test_a_failing_channel_does_not_block_the_other(
    engine: Any, clock: Clock, smtp_server: Inbox
) -> None:
    subscribe(engine, "ann", "slack")
    subscribe(engine, "ann", "email")
    dead_slack = SlackWebhook(f"http://127.0.0.1:{free_port()}{HOOK}")
    channels = {"slack": dead_slack, "email": _email(smtp_server.port)}
    results = _dispatcher(engine, clock, channels=channels).send(_message())
    assert {r.channel: r.status for r in results} == {"slack": "retrying", "email": "sent"}
    assert len(smtp_server.messages) == 1


class ExplodingWebhook(SlackWebhook):
    def send(self, payload: dict[str, Any]) -> None:
        raise RuntimeError("bug in the channel")


def test_an_unexpected_error_is_recorded_and_the_others_still_go_out(
    engine: Any, clock: Clock, smtp_server: Inbox
) -> None:
    subscribe(engine, "ann", "slack")
    subscribe(engine, "ann", "email")
    channels = {
        "slack": ExplodingWebhook("http://127.0.0.1:9/x"),
        "email": _email(smtp_server.port),
    }
    results = _dispatcher(engine, clock, channels=channels).send(_message())
    by_channel = {r.channel: r for r in results}
    assert by_channel["email"].status == "sent"
    assert by_channel["slack"].status == "retrying"
    assert by_channel["slack"].last_error == "unexpected RuntimeError: bug in the channel"


def test_a_broken_template_fails_its_channel_only(
    engine: Any, clock: Clock, smtp_server: Inbox, httpserver: HTTPServer, tmp_path: Path
) -> None:
    (tmp_path / "pipeline_failed.slack.json").write_text('{"text": {{ message.nope | tojson }}}')
    subscribe(engine, "ann", "slack")
    subscribe(engine, "ann", "email")
    channels = {"slack": _slack(httpserver), "email": _email(smtp_server.port)}
    dispatcher = _dispatcher(engine, clock, channels=channels, templates_dir=tmp_path)
    by_channel = {r.channel: r for r in dispatcher.send(_message())}
    assert by_channel["email"].status == "sent"
    slack = by_channel["slack"]
    assert (slack.status, slack.attempts) == ("failed", 0)
    assert str(tmp_path / "pipeline_failed.slack.json") in (slack.last_error or "")
    assert "nope" in (slack.last_error or "")
    assert httpserver.log == []


def test_templates_overridden_from_a_directory(
    engine: Any, clock: Clock, smtp_server: Inbox, tmp_path: Path
) -> None:
    (tmp_path / "pipeline_failed.subject.txt").write_text("Team {{ message.context.branch }}\n")
    subscribe(engine, "ann", "email")
    channels = {"email": _email(smtp_server.port)}
    _dispatcher(engine, clock, channels=channels, templates_dir=tmp_path).send(_message())
    assert smtp_server.messages[0]["Subject"] == "Team main"


def test_the_same_message_twice_is_sent_once(
    engine: Any, clock: Clock, smtp_server: Inbox, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(HOOK).respond_with_data("ok")
    subscribe(engine, "ann", "slack")
    subscribe(engine, "ann", "email")
    channels = {"slack": _slack(httpserver), "email": _email(smtp_server.port)}
    dispatcher = _dispatcher(engine, clock, channels=channels)

    first = dispatcher.send(_message())
    clock.advance(minutes=5)
    again = dispatcher.send(_message(title="edited title"))

    assert [r.status for r in first] == ["sent", "sent"] and not any(r.duplicate for r in first)
    assert [(r.id, r.status, r.duplicate) for r in again] == [(r.id, "sent", True) for r in first]
    assert len(httpserver.log) == 1 and len(smtp_server.messages) == 1
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(Notification.__table__))
        assert count.scalar_one() == 2
    other = dispatcher.send(_message(key="pipeline:shop/api:43:failed"))
    assert [r.status for r in other] == ["sent", "sent"]


def test_nobody_subscribed_sends_nothing(engine: Any, clock: Clock, httpserver: HTTPServer) -> None:
    subscribe(engine, "ann", "slack", "alert")
    dispatcher = _dispatcher(engine, clock, channels={"slack": _slack(httpserver)})
    assert dispatcher.send(_message()) == []
    assert httpserver.log == [] and _rows(engine) == []


def test_an_interrupted_attempt_comes_due_when_its_lease_ends(
    engine: Any, clock: Clock, httpserver: HTTPServer
) -> None:
    class Interrupted(SlackWebhook):
        def send(self, payload: dict[str, Any]) -> None:
            raise KeyboardInterrupt  # the process dies between claiming and recording

    httpserver.expect_request(HOOK).respond_with_data("ok")
    subscribe(engine, "ann", "slack")
    with pytest.raises(KeyboardInterrupt):
        _dispatcher(engine, clock, channels={"slack": Interrupted("http://127.0.0.1:9/")}).send(
            _message()
        )
    [row] = _rows(engine)
    assert (row.status, row.attempts) == ("pending", 1)
    dispatcher = _dispatcher(engine, clock, channels={"slack": _slack(httpserver)})
    assert dispatcher.retry_due() == []
    clock.advance(minutes=10)
    assert [(r.status, r.attempts) for r in dispatcher.retry_due()] == [("sent", 2)]


def test_a_channel_no_longer_configured_fails_on_retry(
    engine: Any, clock: Clock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(HOOK).respond_with_data("oops", status=500)
    subscribe(engine, "ann", "slack")
    _dispatcher(engine, clock, channels={"slack": _slack(httpserver)}).send(_message())
    clock.advance(minutes=1)
    [result] = _dispatcher(engine, clock).retry_due()
    assert result.status == "failed" and "not configured" in (result.last_error or "")


def test_from_settings_without_smtp_does_not_crash(engine: Any, clock: Clock) -> None:
    from timbel_dagster.settings import load_settings

    settings = load_settings(
        slack_webhook_url="https://hooks.slack.com/services/T/B/x",
        smtp_host=None,
        smtp_from=None,
        smtp_user=None,
        smtp_password=None,
        timbel_public_url=PUBLIC,
        timbel_secret_key=KEY,
        timbel_notify_max_attempts=7,
        timbel_templates_dir=None,
    )
    dispatcher = Dispatcher.from_settings(settings, engine=engine, clock=clock)
    assert list(dispatcher.channels) == ["slack"] and dispatcher.max_attempts == 7
    assert dispatcher.unsubscribe_url("ann", "email", "*") is not None


def test_a_naive_clock_is_refused(engine: Any) -> None:
    dispatcher = Dispatcher(engine, {}, clock=lambda: dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        dispatcher.send(_message())


def _disable(engine: Any, name: str) -> None:
    from sqlalchemy import update

    from timbel_dagster.warehouse.schema.models import User

    with engine.begin() as connection:
        connection.execute(update(User).where(User.name == name).values(disabled_at=START))


def test_a_disabled_user_is_not_notified_and_the_results_say_so(
    engine: Any,
    clock: Clock,
    httpserver: HTTPServer,
    smtp_server: Inbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bob (disabled) keeps his subscriptions but gets no e-mail and no Slack mention; each
    notice he would have had is a `skipped` row that names the reason. A mentioned disabled
    user is named without their Slack id, so the post does not notify them either."""
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    for user in ("ann", "bob"):
        subscribe(engine, user, "email", "pipeline_failed")
        subscribe(engine, user, "slack", "pipeline")
    _disable(engine, "bob")
    _disable(engine, "cid")
    dispatcher = _dispatcher(
        engine,
        clock,
        channels={"slack": _slack(httpserver), "email": _email(smtp_server.port)},
    )

    with caplog.at_level("INFO", logger="timbel_dagster.notify.dispatch"):
        results = dispatcher.send(_message(mentions=("cid", "dee")))

    assert [(r.channel, r.recipient, r.status) for r in results] == [
        ("slack", "webhook", "sent"),
        ("email", "ann@example.com", "sent"),
        ("email", "bob", "skipped"),
        ("slack", "bob", "skipped"),
    ]
    assert {r.last_error for r in results if r.status == "skipped"} == {
        "user bob is disabled: not notified"
    }
    assert [message["To"] for message in smtp_server.messages] == ["ann@example.com"]
    [payload] = _posted(httpserver)
    assert payload["blocks"][1]["text"]["text"].splitlines()[0] == "<@U0ANN> @cid <@U0DEE>"
    assert "email|bob|pipeline:shop/api:42:failed: user bob is disabled" in caplog.text
    # Sending the same message again changes nothing, for bob either.
    again = dispatcher.send(_message(mentions=("cid", "dee")))
    assert all(r.duplicate for r in again) and len(again) == 4
