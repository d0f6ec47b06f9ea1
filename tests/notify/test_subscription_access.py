"""Who may change whose subscriptions, and the audit of every change (issue #13, finding 7).

`timbel notify unsubscribe --user OTHER` used to change anyone's subscription, unaudited.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.test_cli import invoke
from timbel_dagster.notify.email import unsubscribe_token
from timbel_dagster.notify.subscriptions import (
    SubscriptionAccessError,
    subscribe,
    unsubscribe,
)
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.schema.models import AuditEvent, User
from timbel_dagster.warehouse.schema.notify import Subscription


def _audit(engine: Any) -> list[tuple]:
    table = AuditEvent.__table__
    query = select(table.c.actor, table.c.action, table.c.target, table.c.details)
    with engine.connect() as connection:
        assert verify_chain(connection).intact
        return [tuple(r) for r in connection.execute(query.order_by(table.c.id))]


def _active(engine: Any, user: str) -> list[bool]:
    table = Subscription.__table__
    with engine.connect() as connection:
        query = select(table.c.active).where(table.c.user_name == user)
        return list(connection.execute(query).scalars())


def _make_admin(engine: Any, name: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(User).where(User.name == name).values(role="admin"))


def test_a_user_changes_their_own_subscriptions_audited(engine: Any) -> None:
    assert subscribe(engine, "ann", "email", "alert", actor="ann") is True
    assert unsubscribe(engine, "ann", "email", "alert", actor="ann") is True
    detail = {"channel": "email", "event": "alert", "rule": "*", "changed": True}
    assert _audit(engine) == [
        ("ann", "notify.subscribe", "ann", detail | {"min_severity": "info", "active": True}),
        ("ann", "notify.unsubscribe", "ann", detail | {"active": False}),
    ]


def test_another_users_subscription_is_refused_to_a_non_admin(engine: Any) -> None:
    subscribe(engine, "bob", "slack", actor="bob")
    with pytest.raises(SubscriptionAccessError) as refused:
        unsubscribe(engine, "bob", "slack", actor="ann")
    assert str(refused.value) == (
        "ann may not change bob's subscriptions: only bob or an admin may (ann is a developer)"
    )
    assert _active(engine, "bob") == [True]  # unchanged
    actor, action, target, details = _audit(engine)[-1]
    assert (actor, action, target) == ("ann", "notify.unsubscribe.refused", "bob")
    assert details["error"] == str(refused.value)


def test_an_unknown_actor_is_refused(engine: Any) -> None:
    with pytest.raises(LookupError) as refused:
        subscribe(engine, "bob", "slack", actor="mallory")
    assert str(refused.value) == (
        "user 'mallory' is not in the users table: add them with `timbel users add mallory "
        "--role ROLE`, or act as a known user with --as or TIMBEL_USER (`timbel users list`)"
    )
    assert _active(engine, "bob") == []


def test_an_admin_changes_anothers_subscription_audited_with_both(engine: Any) -> None:
    _make_admin(engine, "dee")
    subscribe(engine, "bob", "slack")  # bob himself
    assert unsubscribe(engine, "bob", "slack", actor="dee") is True
    assert _active(engine, "bob") == [False]
    assert [(a, act, t) for a, act, t, _ in _audit(engine)] == [
        ("bob", "notify.subscribe", "bob"),
        ("dee", "notify.unsubscribe", "bob"),
    ]


def test_the_command_checks_the_actor_and_audits_every_change(tmp_path: Path) -> None:
    """`timbel notify` end to end: --as / TIMBEL_USER is the actor, the signed link acts as
    the user it names."""
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine

    url = f"sqlite:///{tmp_path / '.timbel' / 'warehouse.db'}"
    (tmp_path / ".timbel").mkdir()
    migrate.upgrade(url)
    engine = get_engine(url)
    from tests.notify.conftest import START

    with engine.begin() as connection:
        connection.execute(
            User.__table__.insert(),
            [
                {"id": uuid.UUID(int=n), "source": "test", "name": name, "role": role,
                 "team": "platform", "email": f"{name}@example.com",
                 "created_at": START, "updated_at": START}
                for n, (name, role) in enumerate(
                    [("minji.kim", "developer"), ("bob", "developer"), ("admin", "admin")], 1
                )
            ],
        )  # fmt: skip
    subscribe(engine, "bob", "email")

    refused = invoke(["notify", "unsubscribe", "--user", "bob", "--channel", "email"], tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "timbel: error: minji.kim may not change bob's subscriptions: only bob or an admin "
        "may (minji.kim is a developer)"
    )
    assert _active(engine, "bob") == [True]

    allowed = invoke(
        ["notify", "unsubscribe", "--user", "bob", "--channel", "email", "--as", "admin"],
        tmp_path,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert _active(engine, "bob") == [False]

    key = "k" * 32
    token = unsubscribe_token("bob", "email", "pipeline_failed", key)
    linked = invoke(["notify", "unsubscribe", "--token", token], tmp_path, TIMBEL_SECRET_KEY=key)
    assert linked.returncode == 0, linked.stderr
    events = [(a, act, t, d.get("via")) for a, act, t, d in _audit(engine)]
    assert events == [
        ("bob", "notify.subscribe", "bob", None),
        ("minji.kim", "notify.unsubscribe.refused", "bob", None),
        ("admin", "notify.unsubscribe", "bob", None),
        ("bob", "notify.unsubscribe", "bob", "signed link"),
    ]
