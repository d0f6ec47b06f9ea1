"""/api/v1/notifications: SELF scope. A user subscribes, lists and unsubscribes their own;
user A cannot touch B's (403, audited, nothing changes); an admin may; history shows only
the caller's deliveries."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from tests.api.conftest import audit_events, bearer, secret_for
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.warehouse.schema.notify import Notification, Subscription


def _active(engine, user: str) -> dict[tuple[str, str], bool]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(Subscription.channel, Subscription.event, Subscription.active).where(
                Subscription.user_name == user
            )
        ).all()
    return {(channel, event): active for channel, event, active in rows}


@pytest.fixture
def dev(engine) -> dict[str, str]:
    return bearer(secret_for(engine, "dev"))


def test_subscribe_list_and_unsubscribe_own(client, engine, dev) -> None:
    body = {"channel": "email", "event": "alert", "min_severity": "high"}
    made = client.post("/api/v1/notifications/subscriptions", headers=dev, json=body)
    assert made.status_code == 201, made.text
    row = made.json()
    assert (row["user"], row["event"], row["active"], row["changed"]) == (
        "dev",
        "alert",
        True,
        True,
    )
    again = client.post("/api/v1/notifications/subscriptions", headers=dev, json=body)
    assert again.json()["changed"] is False
    [(actor, target, _), _] = audit_events(engine, "notify.subscribe")
    assert (actor, target) == ("dev", "dev")

    listed = client.get("/api/v1/notifications/subscriptions", headers=dev).json()["items"]
    assert [s["id"] for s in listed] == [row["id"]]

    gone = client.delete(f"/api/v1/notifications/subscriptions/{row['id']}", headers=dev)
    assert gone.status_code == 204
    assert _active(engine, "dev") == {("email", "alert"): False}
    [(actor, target, _)] = audit_events(engine, "notify.unsubscribe")
    assert (actor, target) == ("dev", "dev")


def test_user_cannot_delete_anothers_subscription(client, engine, dev) -> None:
    subscribe(engine, "viewer", "email", "alert")
    [row] = client.get(
        "/api/v1/notifications/subscriptions?user=viewer",
        headers=bearer(secret_for(engine, "admin")),
    ).json()["items"]
    refused = client.delete(f"/api/v1/notifications/subscriptions/{row['id']}", headers=dev)
    assert refused.status_code == 403, refused.text
    assert "dev may not change viewer's subscriptions" in refused.json()["detail"]
    assert _active(engine, "viewer") == {("email", "alert"): True}
    [(actor, target, _)] = audit_events(engine, "notify.unsubscribe.refused")
    assert (actor, target) == ("dev", "viewer")


def test_user_cannot_subscribe_or_read_another(client, engine, dev) -> None:
    body = {"user": "viewer", "channel": "slack"}
    refused = client.post("/api/v1/notifications/subscriptions", headers=dev, json=body)
    assert refused.status_code == 403
    assert _active(engine, "viewer") == {}
    [(actor, target, _)] = audit_events(engine, "notify.subscribe.refused")
    assert (actor, target) == ("dev", "viewer")
    read = client.get("/api/v1/notifications/subscriptions?user=viewer", headers=dev)
    assert read.status_code == 403
    assert audit_events(engine, "api.refused")[0][0] == "dev"


def test_admin_changes_anyones(client, engine) -> None:
    admin = bearer(secret_for(engine, "admin"))
    body = {"user": "viewer", "channel": "slack", "event": "pipeline"}
    made = client.post("/api/v1/notifications/subscriptions", headers=admin, json=body)
    assert made.status_code == 201 and made.json()["user"] == "viewer"
    gone = client.delete(f"/api/v1/notifications/subscriptions/{made.json()['id']}", headers=admin)
    assert gone.status_code == 204
    assert _active(engine, "viewer") == {("slack", "pipeline"): False}


@pytest.mark.parametrize(
    ("body", "loc"),
    [({"channel": "pager"}, ["body", "channel"]), ({"channel": "email", "event": "lunch"},
      ["body", "event"]), ({"user": "nobody", "channel": "email"}, ["body", "user"])],
)  # fmt: skip
def test_bad_subscription_is_422(client, engine, dev, body, loc) -> None:
    response = client.post("/api/v1/notifications/subscriptions", headers=dev, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:2] == loc


def test_unknown_subscription_is_404(client, dev) -> None:
    response = client.delete(f"/api/v1/notifications/subscriptions/{uuid.uuid4()}", headers=dev)
    assert response.status_code == 404


def test_history_is_the_callers_own(client, engine, dev) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with engine.begin() as connection:
        for n, recipient in enumerate(["dev@example.com", "viewer@example.com", "#alerts"]):
            connection.execute(
                Notification.__table__.insert().values(
                    id=uuid.uuid4(), dedupe_key=f"k{n}", event="alert_fired", channel="email",
                    recipient=recipient, subject="s", payload={}, status="sent", attempts=1,
                    created_at=now + dt.timedelta(minutes=n),
                )
            )  # fmt: skip
    mine = client.get("/api/v1/notifications/history", headers=dev).json()["items"]
    assert [d["recipient"] for d in mine] == ["dev@example.com"]
    assert client.get("/api/v1/notifications/history?user=viewer", headers=dev).status_code == 403
    admin = bearer(secret_for(engine, "admin"))
    theirs = client.get("/api/v1/notifications/history?user=viewer", headers=admin).json()
    assert [d["recipient"] for d in theirs["items"]] == ["viewer@example.com"]
