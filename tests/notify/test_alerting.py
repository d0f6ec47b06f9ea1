"""Alert evaluation end to end: rules over a real Prometheus and warehouse facts, alert
state in the warehouse, notices to a loopback Slack receiver, silences."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, insert, select, update

from tests.conftest import missing_service
from tests.services.kube_series import HOURS, write_kube_history
from tests.services.prometheus import running_prometheus
from timbel_dagster.notify.alerting import AlertEvaluator
from timbel_dagster.notify.dispatch import Dispatcher
from timbel_dagster.notify.facts import FACTS
from timbel_dagster.notify.rule_store import builtin_rules
from timbel_dagster.notify.rules import parse_rules
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.resources.prometheus import PrometheusClient
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.models import AuditEvent
from timbel_dagster.warehouse.schema.notify import Alert, AlertEvent, Notification, Silence

QUOTA_RULE = """\
rules:
  - name: namespace-cpu-near-quota
    severity: critical
    expr: |
      sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))
        / sum by (cluster, namespace) (kube_resourcequota{type="hard", resource="requests.cpu"})
        > 0.9
    for: 10m
    renotify: 1h
    summary: "{{ labels.namespace }} in {{ labels.cluster }} at {{ (value * 100) | round | int }} %"
  - name: broken  # valid PromQL that Prometheus refuses when it runs (many-to-many)
    expr: kube_pod_info / on (cluster) kube_pod_info
"""
HOOK = "/services/T0/B0/hook"
T = HOURS[0] + dt.timedelta(minutes=20)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusClient]:
    try:
        with running_prometheus(tmp_path_factory.mktemp("alerts"), write_kube_history) as url:
            yield PrometheusClient(url)
    except FileNotFoundError as error:
        missing_service(str(error))


def _evaluator(engine: Any, prometheus: Any, httpserver: HTTPServer, clock: Any) -> AlertEvaluator:
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    slack = SlackWebhook(httpserver.url_for(HOOK), timeout_seconds=5)
    dispatcher = Dispatcher(engine, {"slack": slack}, clock=clock)
    return AlertEvaluator(engine, prometheus, dispatcher)


def _posted(httpserver: HTTPServer) -> list[str]:
    return [json.dumps(json.loads(request.data)) for request, _ in httpserver.log]


def test_promql_rule_fires_after_for_notifies_once_and_resolves(
    engine: Any, prometheus: PrometheusClient, httpserver: HTTPServer, clock: Any
) -> None:
    subscribe(engine, "ann", "slack", event="alert", min_severity="high")
    evaluator = _evaluator(engine, prometheus, httpserver, clock)
    quota, broken = parse_rules(QUOTA_RULE, "rules.yaml")
    first = evaluator.tick([quota, broken], T)
    assert "broken" in first.errors  # reported; the other rule still ran
    assert first.series == 1 and first.transitions == []  # pending for 10 minutes
    for minute in range(1, 12):
        clock.now = T + minute * MINUTE
        evaluator.tick([quota], T + minute * MINUTE)
    with engine.connect() as connection:
        (alert,) = connection.execute(select(Alert.__table__)).all()
        events = connection.execute(select(AlertEvent.kind, AlertEvent.notified)).all()
        sent = connection.execute(select(Notification.status, Notification.event)).all()
    assert alert.labels == {"cluster": "west", "namespace": "shop"}
    assert alert.state == "firing" and alert.value == pytest.approx(1.0, rel=1e-3)
    assert events == [("fired", True)]
    assert sent == [("sent", "alert_fired")]
    (posted,) = _posted(httpserver)
    assert "shop in west at 100 %" in posted and "<@U0ANN>" in posted
    # The quota grows: the condition stops holding and the alert resolves, with a notice
    # once the re-notify hour since the first notice has passed.
    roomy = parse_rules(QUOTA_RULE.replace("> 0.9", "> 5"), "rules.yaml")[:1]
    evaluator.tick(roomy, T + 30 * MINUTE)
    later = T + 80 * MINUTE
    clock.now = later
    report = evaluator.tick(roomy, later)
    assert [(t.kind, t.notify) for t in report.transitions] == [("resolved", True)]
    assert len(_posted(httpserver)) == 2


def test_a_silence_mutes_the_notice_but_keeps_the_event(
    engine: Any, prometheus: PrometheusClient, httpserver: HTTPServer, clock: Any
) -> None:
    subscribe(engine, "ann", "slack")
    with engine.begin() as connection:
        connection.execute(
            insert(Silence).values(
                id=uuid.uuid4(),
                matchers={"alertname": "namespace-cpu-near-quota", "cluster": "west"},
                starts_at=T - MINUTE,
                ends_at=T + dt.timedelta(hours=2),
                created_by="ann",
                comment="quota raise under way",
            )
        )
    evaluator = _evaluator(engine, prometheus, httpserver, clock)
    (quota,) = parse_rules(QUOTA_RULE.replace("for: 10m", "for: 0s"), "r.yaml")[:1]
    report = evaluator.tick([quota], T)
    assert [(t.kind, t.notify, t.silenced) for t in report.transitions] == [("fired", False, True)]
    assert _posted(httpserver) == []


def _seed_executions(
    engine: Any, statuses: list[str], at: dt.datetime, name: str = "shop/main"
) -> None:
    from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution

    pipeline = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(Pipeline).values(id=pipeline, source="test", ci_system="jenkins", name=name)
        )
        connection.execute(
            insert(PipelineExecution),
            [
                {
                    "id": uuid.uuid4(),
                    "source": "test",
                    "pipeline_id": pipeline,
                    "external_id": str(n),
                    "status": status,
                    "completed_at": at - n * MINUTE,
                }
                for n, status in enumerate(statuses, start=1)
            ],
        )


@pytest.mark.parametrize(
    ("statuses", "fires"),
    [
        (["failed"] * 2 + ["success"] * 6, True),  # 25 %
        (["failed"] + ["success"] * 7, False),  # 12.5 %
        (["failed"] * 3, False),  # fewer than min_executions
    ],
)
def test_pipeline_failure_rate_fact(engine: Any, statuses: list[str], fires: bool) -> None:
    _seed_executions(engine, statuses, T)
    rules = parse_rules(
        "rules:\n  - name: failures\n    fact: pipeline_failure_rate\n"
        "    params: {window: 1h, min_executions: 5}\n    threshold: '> 0.2'\n",
        "r.yaml",
        set(FACTS),
    )
    report = AlertEvaluator(engine).tick(rules, T)
    assert report.errors == {}
    assert [t.kind for t in report.transitions] == (["fired"] if fires else [])


def test_the_vulnerability_fact_on_a_warehouse_without_findings_fires_nothing(
    engine: Any,
) -> None:
    rules = parse_rules(
        "rules:\n  - name: vulns\n    fact: critical_vulnerabilities_in_prod\n"
        "    threshold: '> 0'\n",
        "r.yaml",
    )
    report = AlertEvaluator(engine).tick(rules, T)
    assert "vulns" not in report.errors and not report.transitions


def _audited(
    engine: Any, action: str, at: dt.datetime, target: str | None = None, error: str | None = None
) -> None:
    """An event appended as base_record.py appends it, then dated `at`."""
    with engine.begin() as connection:
        append_event(
            connection,
            actor="dagster",
            action=action,
            target=target,
            details={"error": error} if error else {"path": "/bases"},
        )
        newest = select(func.max(AuditEvent.id)).scalar_subquery()
        connection.execute(update(AuditEvent).where(AuditEvent.id == newest).values(at=at))


def test_the_base_backup_facts_read_the_newest_base_backup_events(engine: Any) -> None:
    """base_backup_age and base_backup_failed (the built-in base-backup-stale and
    base-backup-failed rules, tests/jobs/test_backup_monitor.py) on each backend."""
    day, now = dt.timedelta(days=1), dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)

    def facts(at: dt.datetime = now) -> tuple[list, list]:
        with engine.connect() as connection:
            return (
                FACTS["base_backup_age"](connection, {}, at),
                FACTS["base_backup_failed"](connection, {}, at),
            )

    assert facts() == ([], [])  # never tried: silent
    # Events that are not a base backup attempt change nothing.
    _audited(engine, "backup.base_prune", now - 20 * day)
    _audited(engine, "backup.fail", now - 20 * day, target="logical", error="BackupError: x")
    assert facts() == ([], [])

    # Only failures: the first attempt is where the age counts from.
    _audited(engine, "backup.base_fail", now - 12 * day, error="BackupError: first\ntrace")
    first_failure = {"failed_at": "2026-11-24T12:00:00+00:00", "error": "BackupError: first"}
    assert facts() == ([({"last_base": "none"}, 12 * 86400.0)], [(first_failure, 1.0)])
    # A base backup taken: the age counts from it, and the failure before it is over.
    _audited(engine, "backup.base", now - 9 * day, target="20261127T120000Z-base-000001")
    taken = {"last_base": "20261127T120000Z-base-000001"}
    assert facts() == ([(taken, 9 * 86400.0)], [])
    # A newer failure alerts again; before it happened, it is not seen.
    _audited(engine, "backup.base_fail", now - day, error="BackupError: second")
    second = {"failed_at": "2026-12-05T12:00:00+00:00", "error": "BackupError: second"}
    assert facts() == ([(taken, 9 * 86400.0)], [(second, 1.0)])
    assert facts(now - 2 * day) == ([(taken, 7 * 86400.0)], [])

    rules = [r for r in builtin_rules() if r.name.startswith("base-backup-")]
    assert [(r.name, r.fact, str(r.threshold)) for r in rules] == [
        ("base-backup-stale", "base_backup_age", "> 691200"),
        ("base-backup-failed", "base_backup_failed", "> 0"),
    ]
    evaluator = AlertEvaluator(engine)
    assert evaluator.tick(rules, now - 2 * day).transitions == []  # 7 days: within the 8
    fired = evaluator.tick(rules, now)
    assert fired.errors == {}
    assert sorted((t.state.rule, t.kind) for t in fired.transitions) == [
        ("base-backup-failed", "fired"),
        ("base-backup-stale", "fired"),
    ]
    _audited(engine, "backup.base", now + dt.timedelta(hours=1), target="20261206T130000Z-x")
    resolved = evaluator.tick(rules, now + dt.timedelta(hours=2))
    assert sorted((t.state.rule, t.kind) for t in resolved.transitions) == [
        ("base-backup-failed", "resolved"),
        ("base-backup-stale", "resolved"),
    ]


def test_promql_rules_without_prometheus_are_reported(engine: Any) -> None:
    report = AlertEvaluator(engine).tick(parse_rules(QUOTA_RULE, "r.yaml"), T)
    assert set(report.errors) == {"namespace-cpu-near-quota", "broken"}
    assert "PROMETHEUS_URL" in report.errors["broken"]


def test_a_storm_of_alerts_is_one_message_per_rule(
    engine: Any, httpserver: HTTPServer, clock: Any
) -> None:
    from timbel_dagster.notify.alerting import GROUP_ABOVE

    for n in range(GROUP_ABOVE + 2):
        _seed_executions(engine, ["failed"] * 5, T, name=f"svc-{n}/main")
    subscribe(engine, "ann", "slack")
    evaluator = _evaluator(engine, None, httpserver, clock)
    rules = parse_rules(
        "rules:\n  - name: failures\n    fact: pipeline_failure_rate\n    threshold: '> 0.2'\n",
        "r.yaml",
        set(FACTS),
    )
    report = evaluator.tick(rules, T)
    assert len(report.transitions) == GROUP_ABOVE + 2
    (posted,) = _posted(httpserver)
    assert f"failures: {GROUP_ABOVE + 2} alerts fired" in posted
