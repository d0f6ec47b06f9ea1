"""/api/v1/alerts: rules need alerts.rules.write (a viewer's attempt is a 403, audited, and
stores nothing; operations stores, replaces (PUT; a second POST is a 409) and deletes),
silences name the token's user, and events page newest first."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests.api.conftest import audit_events, bearer, secret_for
from timbel_dagster.warehouse.schema.notify import AlertEvent, AlertRule, Silence

RULE = {
    "name": "pipeline-failure-rate",
    "severity": "high",
    "fact": "pipeline_failure_rate",
    "params": {"window": "1h", "min_executions": 5},
    "threshold": "> 0.2",
    "for": "10m",
}


def _rules(engine) -> dict[str, dict]:
    with engine.connect() as connection:
        rows = connection.execute(select(AlertRule.name, AlertRule.definition)).all()
    return dict(tuple(row) for row in rows)


@pytest.fixture
def ops(engine) -> dict[str, str]:
    return bearer(secret_for(engine, "ops"))


@pytest.mark.parametrize("user", ["viewer", "dev", "lead"])
def test_rule_write_is_refused_below_operations(client, engine, user) -> None:
    headers = bearer(secret_for(engine, user))
    response = client.post("/api/v1/alerts/rules", headers=headers, json=RULE)
    assert response.status_code == 403, response.text
    assert "alerts.rules.write needs operations or admin" in response.json()["detail"]
    assert _rules(engine) == {}
    [(actor, target, details)] = audit_events(engine, "api.refused")
    assert (actor, target) == (user, "POST /api/v1/alerts/rules")
    assert details["action"] == "alerts.rules.write"


def test_operations_stores_replaces_and_deletes_a_rule(client, engine, ops) -> None:
    created = client.post("/api/v1/alerts/rules", headers=ops, json=RULE)
    assert created.status_code == 201, created.text
    assert created.json() | {"origin": None} == {
        "name": "pipeline-failure-rate", "severity": "high", "kind": "warehouse",
        "for": "0:10:00", "renotify": "4:00:00", "origin": None,
        "query": "pipeline_failure_rate > 0.2", "source": "warehouse",
    }  # fmt: skip
    assert _rules(engine)["pipeline-failure-rate"]["threshold"] == "> 0.2"
    [(actor, target, _)] = audit_events(engine, "alert_rules.save")
    assert (actor, target) == ("ops", "pipeline-failure-rate")

    # Adding it again does not overwrite it: 409, the rule and the audit log unchanged.
    again = client.post("/api/v1/alerts/rules", headers=ops, json=RULE | {"threshold": "> 0.9"})
    assert again.status_code == 409, again.text
    assert "already" in again.json()["detail"] and "PUT" in again.json()["detail"]
    assert _rules(engine)["pipeline-failure-rate"]["threshold"] == "> 0.2"
    assert len(audit_events(engine, "alert_rules.save")) == 1

    replaced = client.put(
        "/api/v1/alerts/rules/pipeline-failure-rate", headers=ops,
        json=RULE | {"threshold": "> 0.5"},
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert _rules(engine)["pipeline-failure-rate"]["threshold"] == "> 0.5"

    listed = client.get("/api/v1/alerts/rules", headers=bearer(secret_for(engine, "viewer")))
    assert listed.status_code == 200
    assert [r["name"] for r in listed.json()["items"]] == [
        "pipeline-failure-rate",
        "ingestion-stale",
        "slo-fast-burn",
        "slo-slow-burn",
        "backup-stale",
        "backup-failed",
        "base-backup-stale",
        "base-backup-failed",
    ]

    deleted = client.delete("/api/v1/alerts/rules/pipeline-failure-rate", headers=ops)
    assert deleted.status_code == 204 and _rules(engine) == {}
    [(actor, target, _)] = audit_events(engine, "alert_rules.delete")
    assert (actor, target) == ("ops", "pipeline-failure-rate")
    again = client.delete("/api/v1/alerts/rules/pipeline-failure-rate", headers=ops)
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({k: v for k, v in RULE.items() if k != "severity"}, ["body", "severity"]),
        (RULE | {"fact": "no_such_fact"}, ["body"]),
        (RULE | {"threshold": "about 3"}, ["body"]),
    ],
)
def test_invalid_rule_is_422_and_stores_nothing(client, engine, ops, body, loc) -> None:
    response = client.post("/api/v1/alerts/rules", headers=ops, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    assert _rules(engine) == {}


def test_put_with_another_name_is_422(client, engine, ops) -> None:
    response = client.put("/api/v1/alerts/rules/other", headers=ops, json=RULE)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "name"]
    assert _rules(engine) == {}


def test_silence_records_the_real_actor(client, engine, ops) -> None:
    body = {"matchers": {"alertname": "disk-full"}, "duration": "2h", "comment": "disk swap"}
    made = client.post("/api/v1/alerts/silences", headers=ops, json=body)
    assert made.status_code == 201, made.text
    silence = made.json()
    assert silence["created_by"] == "ops" and silence["matchers"] == {"alertname": "disk-full"}
    starts = dt.datetime.fromisoformat(silence["starts_at"])
    assert dt.datetime.fromisoformat(silence["ends_at"]) - starts == dt.timedelta(hours=2)
    [(actor, target, details)] = audit_events(engine, "alerts.silence")
    assert (actor, target, details["comment"]) == ("ops", silence["id"], "disk swap")

    viewer = bearer(secret_for(engine, "viewer"))
    listed = client.get("/api/v1/alerts/silences", headers=viewer).json()["items"]
    assert [s["id"] for s in listed] == [silence["id"]]
    refused = client.delete(f"/api/v1/alerts/silences/{silence['id']}", headers=viewer)
    assert refused.status_code == 403

    ended = client.delete(f"/api/v1/alerts/silences/{silence['id']}", headers=ops)
    assert ended.status_code == 204
    assert client.get("/api/v1/alerts/silences", headers=viewer).json()["items"] == []
    everything = client.get("/api/v1/alerts/silences?all=true", headers=viewer).json()["items"]
    assert [s["id"] for s in everything] == [silence["id"]]
    [(actor, _, _)] = audit_events(engine, "alerts.unsilence")
    assert actor == "ops"
    with engine.connect() as connection:
        assert len(connection.execute(select(Silence.id)).all()) == 1


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"matchers": {}, "comment": "x"}, ["body", "matchers"]),
        ({"matchers": {"a": "b"}, "comment": "x", "duration": "soon"}, ["body", "duration"]),
        ({"matchers": {"a": "b"}, "comment": "x", "duration": "100d"}, ["body"]),
        ({"matchers": {"a": "b"}, "comment": "   "}, ["body"]),
    ],
)
def test_bad_silence_is_422_and_stores_nothing(client, engine, ops, body, loc) -> None:
    response = client.post("/api/v1/alerts/silences", headers=ops, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc
    with engine.connect() as connection:
        assert connection.execute(select(Silence.id)).all() == []


def test_unknown_silence_is_404(client, engine, ops) -> None:
    response = client.delete(
        "/api/v1/alerts/silences/5f0c2a9e-3b1d-4c55-9a41-0d5e8f7b6c21", headers=ops
    )
    assert response.status_code == 404


def test_events_page_newest_first(client, engine) -> None:
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with engine.begin() as connection:
        for minute, kind in enumerate(["fired", "renotified", "resolved", "fired", "resolved"]):
            connection.execute(
                AlertEvent.__table__.insert().values(
                    fingerprint="f" * 32, rule="disk-full", severity="high", kind=kind,
                    at=at + dt.timedelta(minutes=minute), value=1.0, labels={"host": "a"},
                )
            )  # fmt: skip
    headers = bearer(secret_for(engine, "viewer"))
    first = client.get("/api/v1/alerts/events?limit=2", headers=headers).json()
    assert [e["kind"] for e in first["items"]] == ["resolved", "fired"]
    second = client.get(
        f"/api/v1/alerts/events?limit=2&cursor={first['next_cursor']}", headers=headers
    ).json()
    assert [e["kind"] for e in second["items"]] == ["resolved", "renotified"]
    resolved = client.get("/api/v1/alerts/events?kind=resolved", headers=headers).json()
    assert [e["kind"] for e in resolved["items"]] == ["resolved", "resolved"]
    assert resolved["next_cursor"] is None
    assert client.get("/api/v1/alerts?state=all", headers=headers).json() == {"items": []}
