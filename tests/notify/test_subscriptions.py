from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from timbel_dagster.notify.messages import Message
from timbel_dagster.notify.subscriptions import recipients, subscribe, unsubscribe, users_by_name
from timbel_dagster.warehouse.schema.notify import Subscription

# Each case: ann's rows on e-mail (event, rule, min_severity, active), the message (event,
# severity, rule) and whether ann gets it.
MATCHING = [
    ("nothing subscribed", [], ("alert_fired", "info", None), False),
    ("everything", [("*", "*", "info", True)], ("pipeline_done", "info", None), True),
    ("exact event", [("alert_fired", "*", "info", True)], ("alert_fired", "high", "cpu"), True),
    ("other event", [("alert_fired", "*", "info", True)], ("alert_resolved", "high", None), False),
    ("event family", [("alert", "*", "info", True)], ("alert_resolved", "info", "cpu"), True),
    ("family of another", [("pipeline", "*", "info", True)], ("alert_fired", "info", None), False),
    ("exact rule", [("*", "cpu", "info", True)], ("alert_fired", "info", "cpu"), True),
    ("other rule", [("*", "cpu", "info", True)], ("alert_fired", "info", "disk"), False),
    ("rule but no rule given", [("*", "cpu", "info", True)], ("alert_fired", "info", None), False),
    ("severity above min", [("*", "*", "high", True)], ("alert_fired", "critical", None), True),
    ("severity at min", [("*", "*", "high", True)], ("alert_fired", "high", None), True),
    ("severity below min", [("*", "*", "high", True)], ("alert_fired", "warning", None), False),
    (
        "one of two rows lets it through",
        [("*", "*", "critical", True), ("alert_fired", "cpu", "info", True)],
        ("alert_fired", "info", "cpu"),
        True,
    ),
    (
        "unsubscribed from the event beats everything",
        [("*", "*", "info", True), ("alert_fired", "*", "info", False)],
        ("alert_fired", "critical", None),
        False,
    ),
    (
        "unsubscribed from another event",
        [("*", "*", "info", True), ("alert_resolved", "*", "info", False)],
        ("alert_fired", "info", None),
        True,
    ),
    (
        "unsubscribed from the family",
        [("alert_fired", "*", "info", True), ("alert", "*", "info", False)],
        ("alert_fired", "info", None),
        True,
    ),
    (
        "a narrower subscription beats a broad unsubscribe",
        [("*", "*", "info", False), ("alert_fired", "cpu", "info", True)],
        ("alert_fired", "info", "cpu"),
        True,
    ),
    (
        "an unsubscribe from a rule beats the event (not comparable: unsubscribe wins)",
        [("alert_fired", "*", "info", True), ("*", "cpu", "info", False)],
        ("alert_fired", "info", "cpu"),
        False,
    ),
    ("only an unsubscribe", [("*", "*", "info", False)], ("run_failed", "critical", None), False),
]


def _rows(engine: Any) -> list[tuple]:
    table = Subscription.__table__
    query = select(
        table.c.user_name,
        table.c.channel,
        table.c.event,
        table.c.rule,
        table.c.min_severity,
        table.c.active,
    ).order_by(table.c.channel, table.c.event, table.c.rule)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


@pytest.mark.parametrize(
    ("rows", "message", "expected"),
    [case[1:] for case in MATCHING],
    ids=[case[0] for case in MATCHING],
)
def test_matching(engine: Any, rows: list, message: tuple, expected: bool) -> None:
    for event, rule, min_severity, active in rows:
        if active:
            subscribe(engine, "ann", "email", event, rule, min_severity)
        else:
            unsubscribe(engine, "ann", "email", event, rule)
    subscribe(engine, "bob", "slack")  # another user on another channel changes nothing
    event, severity, rule = message
    found = recipients(engine, Message(event, "k", "t", severity=severity), rule)
    assert ("ann" in [r.name for r in found.get("email", [])]) is expected
    assert [r.name for r in found["slack"]] == ["bob"]


def test_recipients_carry_addresses_by_channel(engine: Any) -> None:
    for user in ("dee", "ann", "cid"):
        subscribe(engine, user, "slack", "pipeline")
    subscribe(engine, "bob", "email")
    found = recipients(engine, Message("pipeline_failed", "k", "t"))
    assert [(r.name, r.slack_id) for r in found["slack"]] == [
        ("ann", "U0ANN"),
        ("cid", "U0CID"),
        ("dee", "U0DEE"),
    ]
    assert [(r.name, r.email) for r in found["email"]] == [("bob", "bob@example.com")]


def test_unsubscribe_keeps_the_row_and_subscribe_brings_it_back(engine: Any) -> None:
    assert subscribe(engine, "ann", "email", "alert", "*", "high") is True
    assert subscribe(engine, "ann", "email", "alert", "*", "high") is False  # no change
    assert unsubscribe(engine, "ann", "email", "alert") is True
    assert _rows(engine) == [("ann", "email", "alert", "*", "high", False)]
    assert recipients(engine, Message("alert_fired", "k", "t", severity="critical")) == {}
    subscribe(engine, "ann", "email", "alert", "*", "warning")
    assert _rows(engine) == [("ann", "email", "alert", "*", "warning", True)]


def test_unsubscribe_without_a_subscription_records_the_opt_out(engine: Any) -> None:
    unsubscribe(engine, "bob", "slack", "issue_created")
    assert _rows(engine) == [("bob", "slack", "issue_created", "*", "info", False)]


def test_unknown_user_is_named(engine: Any) -> None:
    with pytest.raises(LookupError, match="unknown user 'zed'"):
        subscribe(engine, "zed", "email")
    with pytest.raises(LookupError, match="unknown user 'zed'"):
        unsubscribe(engine, "zed", "email")
    assert _rows(engine) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"channel": "sms"}, "unknown channel 'sms'; valid: slack, email"),
        ({"min_severity": "fatal"}, "unknown severity 'fatal'; valid: critical, high, warning"),
        ({"event": "alerts"}, "unknown event 'alerts'; valid: \\*, pipeline, deployment"),
        ({"rule": ""}, "rule is empty"),
    ],
)
def test_invalid_values_list_the_valid_ones(engine: Any, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        subscribe(engine, **{"user": "ann", "channel": "email", **arguments})


def test_users_by_name(engine: Any) -> None:
    found = users_by_name(engine, ["cid", "nobody", "cid"])
    assert list(found) == ["cid"] and found["cid"].slack_id == "U0CID"
    assert users_by_name(engine, []) == {}


def test_a_disabled_user_is_set_apart(engine: Any) -> None:
    from sqlalchemy import update

    from timbel_dagster.notify.subscriptions import subscribers
    from timbel_dagster.warehouse.schema.models import User

    for user in ("ann", "bob"):
        subscribe(engine, user, "email")
    with engine.begin() as connection:
        connection.execute(
            update(User).where(User.name == "bob").values(disabled_at=dt.datetime.now(dt.UTC))
        )
    message = Message("pipeline_failed", "k", "t")
    assert [r.name for r in recipients(engine, message)["email"]] == ["ann"]
    found = subscribers(engine, message)
    assert [r.name for r in found.disabled["email"]] == ["bob"]
    assert [r.name for r in found.enabled["email"]] == ["ann"]


def test_cli_unsubscribe_by_token_applies_the_links_lifetime(
    engine: Any, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from timbel_dagster.cli.app import main
    from timbel_dagster.notify.email import unsubscribe_token

    key = "k" * 32
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_SECRET_KEY", key)
    subscribe(engine, "ann", "email", "alert")
    sent = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    token = unsubscribe_token("ann", "email", "alert_fired", key, issued_at=sent)

    def run(days: str) -> Any:
        monkeypatch.setenv("TIMBEL_UNSUBSCRIBE_LINK_DAYS", days)
        return CliRunner().invoke(main, ["notify", "unsubscribe", "--token", token])

    expired = run("30")
    assert expired.exit_code == 2
    assert "this unsubscribe link expired on" in expired.output
    assert "links work for 30 days" in expired.output
    assert _rows(engine) == [("ann", "email", "alert", "*", "info", True)]
    done = run("90")
    assert done.exit_code == 0, done.output
    assert "ann unsubscribed from alert_fired on email" in done.output
