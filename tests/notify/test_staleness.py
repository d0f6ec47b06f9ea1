"""The built-in `ingestion-stale` rule: ingestion assets past their fail window since their
last successful materialization in a real (ephemeral) Dagster instance fire once, notify a
loopback Slack receiver, and resolve when the asset materializes again. Time is the clock the
tests hand the evaluator; the materializations are real events, stamped when they happen."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from timbel_dagster.bindings.freshness import InstanceClock
from timbel_dagster.notify.alerting import AlertEvaluator
from timbel_dagster.notify.dispatch import Dispatcher
from timbel_dagster.notify.rule_store import BUILTIN, all_rules, builtin_rules, save_rules, source
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.notify.staleness import NoInstanceError, ingestion_stale
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.settings.freshness import Windows, ingestion_windows
from timbel_dagster.warehouse.schema.notify import Alert, AlertEvent

HOOK = "/services/T0/B0/stale"
H = dt.timedelta(hours=1)
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
CI = Windows(warn=2 * H, fail=4 * H)
CLUSTER = Windows(warn=2 * H, fail=3 * H)


class FixedClock:
    """A MaterializationClock over given times: the pure function's tests."""

    def __init__(self, last: dict[str, dt.datetime | None]) -> None:
        self.last = last

    def windows(self) -> dict[str, Windows]:
        return {"cicd/pipelines": CI, "cluster/node_metrics": CLUSTER, "org/users": CI}

    def last_materialized(self, assets: Any) -> dict[str, dt.datetime | None]:
        return {a: self.last.get(a) for a in assets}


@pytest.mark.parametrize(
    ("age", "window", "stale"),
    [
        (3 * H, "fail", False),
        (4 * H - dt.timedelta(seconds=1), "fail", False),
        (4 * H, "fail", True),  # at the window, as Dagster's evaluator: `>=` fails
        (9 * H, "fail", True),
        (H, "warn", False),
        (2 * H, "warn", True),
    ],
)
def test_an_asset_is_stale_from_its_window_on(age: dt.timedelta, window: str, stale: bool) -> None:
    now = T0 + 10 * H
    found = ingestion_stale(FixedClock({"cicd/pipelines": now - age}), {"window": window}, now)
    expected = [
        (
            {"asset": "cicd/pipelines", f"{window}_window": "4h" if window == "fail" else "2h"},
            age.total_seconds(),
        )
    ]
    assert found == (expected if stale else [])


def test_each_asset_has_its_own_window_and_never_materialized_is_not_stale() -> None:
    now = T0 + 10 * H
    last = {"cicd/pipelines": now - 3.5 * H, "cluster/node_metrics": now - 3.5 * H}
    # org/users never materialized: UNKNOWN in the UI, not an alert.
    found = ingestion_stale(FixedClock(last), {}, now)
    assert found == [({"asset": "cluster/node_metrics", "fail_window": "3h"}, 3.5 * 3600)]


def test_without_the_instance_the_fact_says_where_it_runs() -> None:
    with pytest.raises(NoInstanceError, match="alert_rule_sensor"):
        ingestion_stale(None, {}, T0)
    with pytest.raises(ValueError, match="window must be one of fail, warn"):
        ingestion_stale(FixedClock({}), {"window": "soon"}, T0)


# --- the built-in rule against a real Dagster instance -----------------------------------------


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _materialize(instance: dg.DagsterInstance, key: str, at: dt.datetime, fail: bool = False):
    """Run an asset of that key in `instance` at `at` (Dagster's own `freeze_time` stamps the
    run's events with it), failing if `fail`."""

    @dg.asset(key=dg.AssetKey.from_user_string(key))
    def ingest() -> None:
        if fail:
            raise RuntimeError("the CI server did not answer")

    with freeze_time(at):
        result = dg.materialize([ingest], instance=instance, raise_on_error=False)
    assert result.success is not fail


def _evaluator(engine: Any, instance: dg.DagsterInstance, httpserver: HTTPServer, clock: Any):
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    dispatcher = Dispatcher(
        engine, {"slack": SlackWebhook(httpserver.url_for(HOOK), timeout_seconds=5)}, clock=clock
    )
    return AlertEvaluator(
        engine, dispatcher=dispatcher, clock=InstanceClock(instance, ingestion_windows())
    )


def _posted(httpserver: HTTPServer) -> list[dict]:
    return [json.loads(request.data) for request, _ in httpserver.log]


def test_ingestion_stale_fires_once_notifies_and_resolves_when_fresh_again(
    engine: Any, instance: dg.DagsterInstance, httpserver: HTTPServer, clock: Any
) -> None:
    subscribe(engine, "ann", "slack", event="alert", min_severity="high")
    evaluator = _evaluator(engine, instance, httpserver, clock)
    [rule] = [r for r in builtin_rules() if r.name == "ingestion-stale"]
    assert rule.fact == "ingestion_stale"
    _materialize(instance, "cicd/pipeline_executions", T0)  # CI: fail window 4 h

    def tick(at: dt.datetime) -> Any:
        clock.now = at
        report = evaluator.tick([rule], at)
        assert report.errors == {}
        return report

    assert tick(T0 + 3 * H).series == 0  # WARN in the UI, no alert
    fired = tick(T0 + 4 * H + dt.timedelta(minutes=1))
    assert [t.kind for t in fired.transitions] == ["fired"] and fired.notifications == 1
    [posted] = _posted(httpserver)
    assert "cicd/pipeline_executions has not materialized for 4.0 h (fail window 4h)" in (
        json.dumps(posted)
    )
    # Still stale a minute later, and an hour later: no second notice (renotify 6h).
    assert tick(T0 + 4 * H + dt.timedelta(minutes=2)).transitions == []
    assert tick(T0 + 5 * H).transitions == []
    # A failed run records no materialization: still stale.
    _materialize(instance, "cicd/pipeline_executions", T0 + 5 * H, fail=True)
    assert tick(T0 + 5 * H + dt.timedelta(minutes=1)).series == 1
    # A successful run: the next evaluation resolves the alert, and says so (past renotify).
    _materialize(instance, "cicd/pipeline_executions", T0 + 11 * H)
    resolved = tick(T0 + 11 * H + dt.timedelta(minutes=1))
    assert [t.kind for t in resolved.transitions] == ["resolved"] and resolved.series == 0
    assert resolved.notifications == 1 and len(_posted(httpserver)) == 2
    with engine.connect() as connection:
        [alert] = connection.execute(select(Alert.__table__)).all()
        events = connection.execute(select(AlertEvent.kind).order_by(AlertEvent.id)).scalars()
        assert list(events) == ["fired", "resolved"]
    assert alert.state == "resolved"
    assert alert.labels == {"asset": "cicd/pipeline_executions", "fail_window": "4h"}


def test_a_non_ingestion_asset_is_not_watched(
    engine: Any, instance: dg.DagsterInstance, httpserver: HTTPServer, clock: Any
) -> None:
    evaluator = _evaluator(engine, instance, httpserver, clock)
    _materialize(instance, "cicd/dora_metrics", T0)
    assert evaluator.tick(builtin_rules(), T0 + 100 * H).series == 0


def test_without_an_instance_the_rule_is_reported_and_others_go_on(engine: Any) -> None:
    report = AlertEvaluator(engine).tick(builtin_rules(), T0)
    assert "reads the Dagster instance" in report.errors["ingestion-stale"]


def test_the_built_in_rule_is_listed_and_a_disabled_stored_rule_of_its_name_turns_it_off(
    engine: Any,
) -> None:
    found, errors = all_rules(engine)
    assert errors == [] and [(r.name, source(r)) for r in found] == [
        ("ingestion-stale", BUILTIN),
        ("slo-fast-burn", BUILTIN),
        ("slo-slow-burn", BUILTIN),
        ("backup-stale", BUILTIN),  # backup_monitor's (tests/jobs/test_backup_monitor.py)
        ("backup-failed", BUILTIN),
        ("base-backup-stale", BUILTIN),
        ("base-backup-failed", BUILTIN),
    ]
    save_rules(
        engine,
        "rules:\n  - name: ingestion-stale\n    fact: ingestion_stale\n    enabled: false\n",
        "off.yaml",
        "ann",
    )
    found, _ = all_rules(engine)
    # The stored rule is disabled (not loaded), and it took the name.
    assert [r.name for r in found] == [
        "slo-fast-burn",
        "slo-slow-burn",
        "backup-stale",
        "backup-failed",
        "base-backup-stale",
        "base-backup-failed",
    ]


def test_sample_mode_has_no_freshness_windows() -> None:
    """The sample is a fixed history nothing refreshes: no policy, no stale alert."""
    from timbel_dagster.settings import load_settings
    from timbel_dagster.settings.freshness import INGESTION_ASSETS, ingestion_windows

    assert ingestion_windows(load_settings(timbel_sample_data=True)) == {}
    live = ingestion_windows(load_settings(timbel_sample_data=False))
    assert set(live) == set(INGESTION_ASSETS)
