"""`alerts/alert_events`: the alert history, brought up to date by evaluating every rule."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource


class AlertEventsConfig(dg.Config):
    rules_file: str | None = None  # default TIMBEL_ALERT_RULES_FILE


@dg.asset(
    key=["alerts", "alert_events"],
    group_name="alerts",
    kinds={"prometheus", "sql", "slack"},
    owners=OWNERS,
    # Evaluated after the facts its warehouse rules read are fresh.
    deps=[
        ["cluster", "namespace_usage"],
        ["cluster", "workload_status"],
        ["cicd", "pipeline_executions"],
        # The SLO burn-rate rules read its latest statuses.
        ["slo", "slo_status"],
    ],
    description="One row per alert transition (fired, re-notified, resolved); materializing "
    "evaluates every rule once, as the alert_rule_sensor does each minute.",
)
def alert_events(
    context: dg.AssetExecutionContext, config: AlertEventsConfig, warehouse: WarehouseResource
):
    from sqlalchemy import func, select

    # lazy: warehouse.schema.notify loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.notify import Alert, AlertEvent

    # The same notifier the sensors use, on this run's warehouse.
    notifier = NotifierResource(database_url=warehouse.url(), rules_file=config.rules_file)
    rules, errors = notifier.rules()
    for error in errors:
        context.log.warning(error)
    report = notifier.evaluator(context.log, context.instance).tick(rules)
    for name, error in sorted(report.errors.items()):
        context.log.warning(f"rule {name}: {error}")
    since = report.at - dt.timedelta(days=1)
    with notifier.engine().connect() as connection:
        firing = connection.execute(
            select(Alert.rule, Alert.severity, func.count())
            .where(Alert.state == "firing")
            .group_by(Alert.rule, Alert.severity)
        ).all()
        last_day = connection.execute(
            select(AlertEvent.rule, AlertEvent.kind, func.count())
            .where(AlertEvent.at >= since)
            .group_by(AlertEvent.rule, AlertEvent.kind)
        ).all()
    return dg.MaterializeResult(
        metadata={
            "rules": dg.MetadataValue.int(report.rules),
            "rule_errors": dg.MetadataValue.int(len(report.errors) + len(errors)),
            "transitions": dg.MetadataValue.int(len(report.transitions)),
            "rows_written": dg.MetadataValue.int(len(report.transitions)),
            "notices_sent": dg.MetadataValue.int(report.notifications),
            "firing": dg.MetadataValue.int(sum(count for _, _, count in firing)),
            "firing_by_rule": markdown_table(
                [{"rule": r, "severity": s, "alerts": c} for r, s, c in firing],
                ["rule", "severity", "alerts"],
            ),
            "events_last_24h": markdown_table(
                [{"rule": r, "kind": k, "events": c} for r, k, c in last_day],
                ["rule", "kind", "events"],
            ),
        }
    )
