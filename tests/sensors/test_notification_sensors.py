"""The notification sensors ticked through Dagster's test contexts, on SQLite and PostgreSQL:
`alert_rule_sensor` over warehouse facts, `delivery_notification_sensor` over finished builds
and deployments, and `run_failure_notifier` over a real failed run; notices go to a loopback
Slack receiver (pytest-httpserver) configured through SLACK_WEBHOOK_URL."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import insert, select, update

from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.notify.activity import finished_since, start_marks
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.sensors.notifications import (
    alert_rule_sensor,
    delivery_notification_sensor,
    run_failure_notifier,
)
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import Deployment, Pipeline, PipelineExecution, User
from timbel_dagster.warehouse.schema.notify import Alert, AlertEvent, Notification
from timbel_dagster.warehouse.store.upsert import bulk_upsert

HOOK = "/services/T0TEAM/B0HOOK/sensorHookToken"
MINUTE = dt.timedelta(minutes=1)
# Every variable the notifier reads besides those a test sets itself.
NOTIFIER_VARIABLES = (
    "SLACK_WEBHOOK_URL",
    "SMTP_HOST",
    "SMTP_FROM",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "PROMETHEUS_URL",
    "TIMBEL_ALERT_RULES_FILE",
    "TIMBEL_DATABASE_URL",
    "TIMBEL_PUBLIC_URL",
    "TIMBEL_SECRET_KEY",
    "TIMBEL_TEMPLATES_DIR",
    "TIMBEL_NOTIFY_MAX_ATTEMPTS",
)
USERS = [  # name, e-mail, Slack id
    ("ann", "ann@example.com", "U0ANN"),
    ("bob", "bob@example.com", None),
]
FAILURE_RULES = """\
rules:
  - name: pipeline-failure-rate
    severity: high
    fact: pipeline_failure_rate
    params: {window: 1h, min_executions: 5}
    threshold: "> 0.2"
    renotify: 1h
    summary: "{{ labels.pipeline }} failed {{ (value * 100) | round | int }} % of its builds"
"""
QUOTA_RULES = """\
rules:
  - name: namespace-cpu-near-quota
    severity: critical
    fact: namespace_cpu_quota_ratio
    params: {window: 3h}
    threshold: "> 0.9"
"""


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings from this test's environment alone (no `.env`, no channels), read afresh."""
    monkeypatch.chdir(tmp_path)
    for name in NOTIFIER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def slack(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    """A loopback Slack webhook that answers `ok`, configured as SLACK_WEBHOOK_URL."""
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", httpserver.url_for(HOOK))
    get_settings.cache_clear()
    return httpserver


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    """The migrated warehouse with two users."""
    engine = get_engine(warehouse_url)
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": stable_id("users", name),
            "source": "test",
            "name": name,
            "display_name": name.title(),
            "email": email,
            "role": "developer",
            "team": "platform",
            "slack_id": slack_id,
            "created_at": now,
            "updated_at": now,
        }
        for name, email, slack_id in USERS
    ]
    with engine.begin() as connection:
        bulk_upsert(connection, User.__table__, rows, ["name"])
    return engine


def _notifier(url: str, rules: Path | None = None) -> NotifierResource:
    return NotifierResource(database_url=url, rules_file=str(rules) if rules else None)


def _rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alert-rules.yaml"
    path.write_text(text)
    return path


def _tick(sensor: Any, notifier: NotifierResource, cursor: str | None = None) -> tuple[Any, Any]:
    """One evaluation; returns what the sensor returned and the cursor it left."""
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"notifier": notifier}, cursor=cursor
    ) as context:
        result = sensor(context)
        return result, context.cursor


def _message(result: Any) -> str:
    assert isinstance(result, dg.SkipReason), result
    return result.skip_message or ""


def _pipeline(engine: Any, name: str = "shop/api/main") -> uuid.UUID:
    pipeline = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(Pipeline).values(
                id=pipeline, source="test", ci_system="jenkins", name=name, service="shop-api"
            )
        )
    return pipeline


def _executions(
    engine: Any,
    pipeline: uuid.UUID,
    completed: list[tuple[str, dt.datetime]],
    triggered_by: str | None = None,
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in completed]
    with engine.begin() as connection:
        connection.execute(
            insert(PipelineExecution),
            [
                {
                    "id": execution,
                    "source": "test",
                    "pipeline_id": pipeline,
                    "external_id": f"{execution.hex[:8]}",
                    "status": status,
                    "started_at": at - 5 * MINUTE,
                    "completed_at": at,
                    "duration": 300.0,
                    "branch": "main",
                    "triggered_by": triggered_by,
                    "error_message": "integration-tests failed" if status == "failed" else None,
                    "url": f"https://ci.example.com/job/shop-api/{execution.hex[:8]}/",
                }
                for execution, (status, at) in zip(ids, completed, strict=True)
            ],
        )
    return ids


def _rows(engine: Any, *columns: Any, order: Any = None) -> list[Any]:
    with engine.connect() as connection:
        query = select(*columns)
        return connection.execute(query.order_by(order) if order is not None else query).all()


def _posted(httpserver: HTTPServer) -> list[str]:
    """The bodies posted to the webhook, as text."""
    return [request.get_data(as_text=True) for request, _ in httpserver.log]


# --- alert_rule_sensor -----------------------------------------------------------------------


def test_alert_sensor_without_configured_rules_evaluates_the_built_in_one(
    warehouse_url: str,
) -> None:
    result, cursor = _tick(alert_rule_sensor, _notifier(warehouse_url))
    message = _message(result)
    # ingestion-stale, over the sensor's Dagster instance (nothing materialized: no series),
    # and the SLO burn-rate rules (no SLO status stored: no series).
    assert message.startswith("3 rules, 0 active series, 0 transitions"), message
    assert "errors" not in message and "0 notices retried" in message
    assert cursor is None
    assert _rows(get_engine(warehouse_url), Alert.fingerprint) == []


def test_alert_sensor_fires_ingestion_stale_from_its_instance_and_notifies(
    engine: Any, warehouse_url: str, slack: HTTPServer
) -> None:
    """An ingestion asset last materialized 5 hours ago (Dagster's `freeze_time` stamps the
    run) is past the CI fail window (4 h): the sensor's tick fires the built-in rule and the
    notice goes to Slack; a fresh materialization resolves it on the next tick."""
    from dagster._core.test_utils import freeze_time

    subscribe(engine, "ann", "slack", event="alert", min_severity="high")

    @dg.asset(key=["cicd", "pipeline_executions"])
    def pipeline_executions() -> None:
        pass

    notifier = _notifier(warehouse_url)
    with dg.DagsterInstance.ephemeral() as instance:
        with freeze_time(dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)):
            dg.materialize([pipeline_executions], instance=instance)

        def tick() -> str:
            with dg.build_sensor_context(
                instance=instance, resources={"notifier": notifier}
            ) as context:
                return _message(alert_rule_sensor(context))

        assert tick().startswith("3 rules, 1 active series, 1 transitions, 1 notices sent")
        [alert] = _rows(engine, Alert.__table__)
        assert alert.rule == "ingestion-stale" and alert.state == "firing"
        assert alert.labels == {"asset": "cicd/pipeline_executions", "fail_window": "4h"}
        [posted] = _posted(slack)
        assert "cicd/pipeline_executions has not materialized for 5.0 h" in posted

        dg.materialize([pipeline_executions], instance=instance)
        assert "0 active series, 1 transitions" in tick()
        [alert] = _rows(engine, Alert.__table__)
        assert alert.state == "resolved"


def test_alert_sensor_reads_the_rules_file_from_the_environment(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMBEL_ALERT_RULES_FILE", str(_rules_file(tmp_path, FAILURE_RULES)))
    get_settings.cache_clear()
    result, _ = _tick(alert_rule_sensor, _notifier(warehouse_url))
    assert _message(result).startswith("4 rules, 0 active series, 0 transitions")


def test_alert_sensor_with_a_broken_rules_file_fails_the_tick_naming_it(
    warehouse_url: str, tmp_path: Path
) -> None:
    from timbel_dagster.notify.rules import RuleError

    path = _rules_file(tmp_path, FAILURE_RULES.replace('"> 0.2"', "about half"))
    with pytest.raises(RuleError) as failure:
        _tick(alert_rule_sensor, _notifier(warehouse_url, path))
    assert str(failure.value) == (
        f"{path}:2: rule 'pipeline-failure-rate': threshold 'about half' is not like '> 0.2'"
    )


def test_alert_sensor_fires_stores_and_resolves_a_warehouse_fact(
    engine: Any, warehouse_url: str, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    pipeline = _pipeline(engine)
    statuses = ["failed"] * 3 + ["success"] * 5  # 37.5 % failed in the last hour
    ids = _executions(
        engine, pipeline, [(s, now - (n + 1) * MINUTE) for n, s in enumerate(statuses)]
    )
    notifier = _notifier(warehouse_url, _rules_file(tmp_path, FAILURE_RULES))

    result, _ = _tick(alert_rule_sensor, notifier)
    message = _message(result)
    # No channel is configured: the transition is stored, nothing is sent.
    assert message.startswith("4 rules, 1 active series, 1 transitions, 0 notices sent in ")
    assert message.endswith("; 0 notices retried") and "errors" not in message
    [alert] = _rows(engine, Alert.__table__)
    assert alert.rule == "pipeline-failure-rate" and alert.state == "firing"
    assert alert.severity == "high" and alert.value == pytest.approx(0.375)
    assert alert.labels == {"pipeline": "shop/api/main", "ci_system": "jenkins"}
    events = _rows(engine, AlertEvent.kind, AlertEvent.rule, AlertEvent.summary)
    assert events == [("fired", "pipeline-failure-rate", "shop/api/main failed 38 % of its builds")]
    assert _rows(engine, Notification.id) == []

    # Still failing: no new transition, the alert stays firing.
    result, _ = _tick(alert_rule_sensor, notifier)
    assert "1 active series, 0 transitions" in _message(result)
    assert [a.state for a in _rows(engine, Alert.__table__)] == ["firing"]

    # The failed builds are retried and pass: the alert resolves.
    with engine.begin() as connection:
        connection.execute(
            update(PipelineExecution)
            .where(PipelineExecution.id.in_(ids))
            .values(status="success", error_message=None)
        )
    result, _ = _tick(alert_rule_sensor, notifier)
    assert "0 active series, 1 transitions" in _message(result)
    [alert] = _rows(engine, Alert.__table__)
    assert alert.state == "resolved" and alert.resolved_at is not None
    # Inside the re-notify hour since the notice of firing: its notice is held back.
    assert alert.notice_pending is True
    events = _rows(engine, AlertEvent.kind, AlertEvent.notified, order=AlertEvent.id)
    assert events == [("fired", True), ("resolved", False)]


def test_alert_sensor_over_namespace_usage(engine: Any, warehouse_url: str, tmp_path: Path) -> None:
    from timbel_dagster.warehouse.schema.cluster import NamespaceUsage

    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(
        hours=1
    )
    usage = {"shop": 9.5, "search": 4.0}  # peak cores over a quota of 10
    with engine.begin() as connection:
        connection.execute(
            insert(NamespaceUsage),
            [
                {
                    "id": uuid.uuid4(),
                    "source": "test",
                    "cluster": "west",
                    "hour": hour,
                    "namespace": namespace,
                    "tenant": "commerce",
                    "pods": 4,
                    "cpu_used_cores": peak / 2,
                    "cpu_used_cores_max": peak,
                    "cpu_requested_cores": 6.0,
                    "cpu_quota_cores": 10.0,
                    "memory_used_bytes": 1e9,
                    "memory_requested_bytes": 2e9,
                    "storage_bytes": 0.0,
                }
                for namespace, peak in usage.items()
            ],
        )
    result, _ = _tick(
        alert_rule_sensor, _notifier(warehouse_url, _rules_file(tmp_path, QUOTA_RULES))
    )
    assert "1 active series, 1 transitions" in _message(result)
    [alert] = _rows(engine, Alert.__table__)
    assert alert.labels == {"cluster": "west", "namespace": "shop"}
    assert alert.state == "firing" and alert.value == pytest.approx(0.95)


def test_alert_sensor_posts_to_slack_subscribers_once(
    engine: Any, warehouse_url: str, tmp_path: Path, slack: HTTPServer
) -> None:
    subscribe(engine, "ann", "slack", "alert")
    now = dt.datetime.now(dt.UTC)
    pipeline = _pipeline(engine)
    _executions(engine, pipeline, [("failed", now - (n + 1) * MINUTE) for n in range(6)])
    notifier = _notifier(warehouse_url, _rules_file(tmp_path, FAILURE_RULES))

    result, _ = _tick(alert_rule_sensor, notifier)
    assert "1 transitions, 1 notices sent" in _message(result)
    [posted] = _posted(slack)
    assert "shop/api/main failed 100 % of its builds" in posted and "<@U0ANN>" in posted
    [row] = _rows(engine, Notification.__table__)
    assert (row.event, row.channel, row.status, row.attempts) == ("alert_fired", "slack", "sent", 1)
    [event] = _rows(engine, AlertEvent.kind, AlertEvent.notified)
    assert event == ("fired", True)

    # The next tick finds the alert firing and notified: nothing more is posted.
    result, _ = _tick(alert_rule_sensor, notifier)
    assert "0 transitions, 0 notices sent" in _message(result)
    assert len(_posted(slack)) == 1
    assert len(_rows(engine, Notification.id)) == 1


def test_alert_sensor_retries_a_failed_post_when_it_is_due(
    engine: Any, warehouse_url: str, tmp_path: Path, httpserver: HTTPServer, monkeypatch: Any
) -> None:
    httpserver.expect_oneshot_request(HOOK, method="POST").respond_with_data(
        "internal_error", status=503
    )
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", httpserver.url_for(HOOK))
    get_settings.cache_clear()
    subscribe(engine, "ann", "slack")
    now = dt.datetime.now(dt.UTC)
    _executions(engine, _pipeline(engine), [("failed", now - (n + 1) * MINUTE) for n in range(5)])
    notifier = _notifier(warehouse_url, _rules_file(tmp_path, FAILURE_RULES))

    result, _ = _tick(alert_rule_sensor, notifier)
    assert "1 transitions, 0 notices sent" in _message(result)
    [row] = _rows(engine, Notification.__table__)
    assert row.status == "retrying" and row.attempts == 1 and "HTTP 503" in row.last_error
    assert row.next_attempt_at > now

    # Not due yet: the next tick leaves it alone.
    result, _ = _tick(alert_rule_sensor, notifier)
    assert _message(result).endswith("; 0 notices retried") and len(httpserver.log) == 1

    # Its backoff has passed: the tick sends it again, from the payload stored in the row.
    with engine.begin() as connection:
        connection.execute(update(Notification).values(next_attempt_at=now - MINUTE))
    result, _ = _tick(alert_rule_sensor, notifier)
    assert _message(result).endswith("; 1 notices retried")
    [row] = _rows(engine, Notification.__table__)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    first, second = _posted(httpserver)
    assert json.loads(first) == json.loads(second)


def test_alert_sensor_reports_a_file_rule_shadowing_a_warehouse_rule(
    engine: Any, warehouse_url: str, tmp_path: Path
) -> None:
    from timbel_dagster.notify.rule_store import save_rules

    save_rules(engine, FAILURE_RULES.replace("> 0.2", "> 0.5"), "stored.yaml", "ann")
    save_rules(engine, QUOTA_RULES, "stored.yaml", "ann")
    rules, errors = _notifier(warehouse_url, _rules_file(tmp_path, FAILURE_RULES)).rules()
    assert [(r.name, r.origin) for r in rules] == [
        ("pipeline-failure-rate", f"{tmp_path / 'alert-rules.yaml'}:2"),
        ("namespace-cpu-near-quota", "warehouse:namespace-cpu-near-quota"),
        ("ingestion-stale", "built-in:8"),
        ("slo-fast-burn", "built-in:19"),
        ("slo-slow-burn", "built-in:27"),
        ("backup-stale", "built-in:37"),
        ("backup-failed", "built-in:44"),
        ("base-backup-stale", "built-in:55"),
        ("base-backup-failed", "built-in:62"),
    ]
    assert errors == [
        "warehouse:pipeline-failure-rate: rule 'pipeline-failure-rate' is skipped: "
        f"{tmp_path / 'alert-rules.yaml'}:2 defines it too"
    ]
    result, _ = _tick(alert_rule_sensor, _notifier(warehouse_url, tmp_path / "alert-rules.yaml"))
    # The backup rules are backup_monitor's (tests/jobs/test_backup_monitor.py).
    assert _message(result).startswith("5 rules, 0 active series, 0 transitions")


# --- delivery_notification_sensor ------------------------------------------------------------


def _cursor_time(cursor: str) -> dt.datetime:
    """The executions mark of the sensor's cursor: the write time of the last row taken."""
    return dt.datetime.fromisoformat(json.loads(cursor)["executions"][0])


def test_delivery_sensor_first_tick_starts_from_now(
    engine: Any, warehouse_url: str, slack: HTTPServer
) -> None:
    subscribe(engine, "ann", "slack")
    before = dt.datetime.now(dt.UTC)
    # Finished before the first tick: history is not replayed.
    _executions(engine, _pipeline(engine), [("failed", before - MINUTE)], triggered_by="ann")
    result, cursor = _tick(delivery_notification_sensor, _notifier(warehouse_url))
    assert _message(result) == "first tick: notices start from now"
    assert before <= _cursor_time(cursor) <= dt.datetime.now(dt.UTC)
    assert _posted(slack) == [] and _rows(engine, Notification.id) == []


def test_delivery_sensor_with_nothing_finished_keeps_its_cursor(
    engine: Any, warehouse_url: str, slack: HTTPServer
) -> None:
    subscribe(engine, "ann", "slack")
    notifier = _notifier(warehouse_url)
    _, cursor = _tick(delivery_notification_sensor, notifier)
    # Still running: not a finished build.
    _executions(engine, _pipeline(engine), [("running", dt.datetime.now(dt.UTC))])
    result, moved = _tick(delivery_notification_sensor, notifier, cursor)
    assert _message(result) == "0 finished builds and deployments, 0 notices sent"
    assert moved == cursor
    assert _posted(slack) == [] and _rows(engine, Notification.id) == []


def test_delivery_sensor_notifies_each_finished_build_once(
    engine: Any, warehouse_url: str, slack: HTTPServer
) -> None:
    notifier = _notifier(warehouse_url)
    _, cursor = _tick(delivery_notification_sensor, notifier)
    started = _cursor_time(cursor)
    assert _posted(slack) == []

    subscribe(engine, "bob", "slack", "pipeline_failed")
    completed = dt.datetime.now(dt.UTC)
    assert completed > started
    [failed] = _executions(engine, _pipeline(engine), [("failed", completed)], triggered_by="ann")
    result, cursor = _tick(delivery_notification_sensor, notifier, cursor)
    assert _message(result) == "1 finished builds and deployments, 1 notices sent"
    assert _cursor_time(cursor) >= completed
    [row] = _rows(engine, Notification.__table__)
    assert (row.event, row.channel, row.status) == ("pipeline_failed", "slack", "sent")
    assert row.dedupe_key.endswith(f"execution:{failed}:failed")
    assert row.subject.startswith("shop/api/main #") and row.subject.endswith(" failed")
    [posted] = _posted(slack)
    # The subscriber (no Slack id: @name) and the one who triggered the build are mentioned.
    assert "@bob" in posted and "<@U0ANN>" in posted and "integration-tests failed" in posted

    result, again = _tick(delivery_notification_sensor, notifier, cursor)
    assert _message(result) == "0 finished builds and deployments, 0 notices sent"
    assert _cursor_time(again) >= _cursor_time(cursor)
    assert len(_posted(slack)) == 1 and len(_rows(engine, Notification.id)) == 1


def test_delivery_sensor_notifies_finished_deployments_not_running_ones(
    engine: Any, warehouse_url: str, slack: HTTPServer
) -> None:
    subscribe(engine, "ann", "slack", "deployment")
    notifier = _notifier(warehouse_url)
    _, cursor = _tick(delivery_notification_sensor, notifier)
    completed = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Deployment),
            [
                {
                    "id": uuid.uuid4(),
                    "source": "test",
                    "external_id": f"deploy-{status}",
                    "service": "shop-api",
                    "environment": "prod",
                    "cluster": "west",
                    "version": "1.4.2",
                    "status": status,
                    "started_at": completed - 3 * MINUTE,
                    "completed_at": completed if status != "running" else None,
                }
                for status in ("rolled_back", "running")
            ],
        )
    result, _ = _tick(delivery_notification_sensor, notifier, cursor)
    assert _message(result) == "1 finished builds and deployments, 1 notices sent"
    [row] = _rows(engine, Notification.__table__)
    assert row.event == "deployment_done"
    assert row.subject == "shop-api 1.4.2 to prod: rolled_back"


def test_delivery_sensor_without_channels_moves_on_and_records_nothing(
    engine: Any, warehouse_url: str
) -> None:
    notifier = _notifier(warehouse_url)
    _, cursor = _tick(delivery_notification_sensor, notifier)
    _executions(engine, _pipeline(engine), [("success", dt.datetime.now(dt.UTC))])
    result, moved = _tick(delivery_notification_sensor, notifier, cursor)
    assert _message(result) == "1 finished builds and deployments, 0 notices sent"
    assert _cursor_time(moved) > _cursor_time(cursor)
    assert _rows(engine, Notification.id) == []


def test_delivery_sensor_notifies_a_build_ingested_after_it_finished(
    engine: Any, warehouse_url: str, slack: HTTPServer
) -> None:
    subscribe(engine, "ann", "slack", "pipeline")
    notifier = _notifier(warehouse_url)
    finished = dt.datetime.now(dt.UTC)  # the build finishes on Jenkins ...
    _, cursor = _tick(delivery_notification_sensor, notifier)  # ... the sensor ticks ...
    assert _cursor_time(cursor) > finished
    _executions(engine, _pipeline(engine), [("failed", finished)])  # ... then it is ingested
    result, _ = _tick(delivery_notification_sensor, notifier, cursor)
    assert _message(result) == "1 finished builds and deployments, 1 notices sent"


def test_finished_since_pages_by_write_time(engine: Any) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    pipeline = _pipeline(engine)
    _executions(engine, pipeline, [("success", start + n * MINUTE) for n in range(1, 4)])
    _executions(engine, pipeline, [("running", start + 2 * MINUTE)])
    with engine.connect() as connection:
        first, resume = finished_since(connection, start_marks(start), limit=2)
        rest, end = finished_since(connection, resume, limit=2)
        none, same = finished_since(connection, end, limit=2)
    assert [m.event for m in first] == ["pipeline_done", "pipeline_done"]
    assert len(rest) == 1 and none == [] and same == end
    assert len({m.key for m in first + rest}) == 3


def test_finished_since_does_not_lose_rows_that_tie_at_the_limit(engine: Any) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    same = start + MINUTE
    _executions(engine, _pipeline(engine), [("failed", same)] * 3)
    keys: set[str] = set()
    marks = start_marks(start)
    with engine.connect() as connection:
        for _ in range(5):  # what successive sensor ticks would do
            messages, marks = finished_since(connection, marks, limit=2)
            keys |= {m.key for m in messages}
    assert len(keys) == 3


# --- run_failure_notifier --------------------------------------------------------------------


@dg.op
def explode() -> None:
    raise RuntimeError("the warehouse is on fire")


@dg.job
def doomed_job() -> None:
    explode()


def _failed_run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = doomed_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result


def _notify_failure(instance: dg.DagsterInstance, notifier: NotifierResource) -> Any:
    result = _failed_run(instance)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_notifier",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"notifier": notifier},
    )
    run_failure_notifier(context)
    return result


def test_run_failure_notifier_posts_the_failed_run(
    engine: Any, warehouse_url: str, slack: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIMBEL_PUBLIC_URL", "https://timbel.example.com")
    get_settings.cache_clear()
    subscribe(engine, "ann", "slack", "run")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _notify_failure(instance, _notifier(warehouse_url))
        run_id = result.run_id
        # The same failure seen twice (a sensor re-evaluation) is posted once.
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_notifier",
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"notifier": _notifier(warehouse_url)},
        )
        run_failure_notifier(context)
    [row] = _rows(engine, Notification.__table__)
    assert (row.event, row.channel, row.status) == ("run_failed", "slack", "sent")
    assert row.dedupe_key == f"slack|webhook|run:{run_id}:failed"
    assert row.subject == "Dagster run of doomed_job failed"
    [posted] = _posted(slack)
    assert "doomed_job" in posted and run_id in posted and "<@U0ANN>" in posted
    assert f"https://timbel.example.com/runs/{run_id}" in posted


def test_run_failure_notifier_without_subscribers_records_nothing(
    engine: Any, warehouse_url: str, slack: HTTPServer
) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        _notify_failure(instance, _notifier(warehouse_url))
    assert _rows(engine, Notification.id) == []
    assert _posted(slack) == []
