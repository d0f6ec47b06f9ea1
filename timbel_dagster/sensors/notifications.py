"""Alerting and notification automation: rule evaluation every minute, notices about
finished builds and deployments, retries of failed sends, and failed Dagster runs."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt
import json

import dagster as dg

from timbel_dagster.bindings.notifier import NotifierResource


def _report_text(report) -> str:
    text = (
        f"{report.rules} rules, {report.series} active series, {len(report.transitions)} "
        f"transitions, {report.notifications} notices sent in {report.seconds}s"
    )
    if report.errors:
        text += "; errors: " + "; ".join(f"{k}: {v}" for k, v in sorted(report.errors.items()))
    return text


def rules_of(context: dg.SensorEvaluationContext, notifier: NotifierResource, backup: bool):
    """The rules one of the two evaluating sensors ticks: backup_monitor the backup rules,
    alert_rule_sensor the others; the rules' load errors logged."""
    # lazy: notify.facts loads SQLAlchemy; the code location loads without it
    from timbel_dagster.notify.facts import BACKUP_FACTS

    rules, errors = notifier.rules()
    for error in errors:
        context.log.warning(error)
    return [r for r in rules if (r.fact in BACKUP_FACTS) == backup]


def tick_text(context: dg.SensorEvaluationContext, evaluator, rules) -> str:
    """Evaluate `rules` once; what the tick did, each rule's error logged."""
    report = evaluator.tick(rules)
    for name, error in sorted(report.errors.items()):
        context.log.warning(f"rule {name}: {error}")
    return _report_text(report)


@dg.sensor(
    name="alert_rule_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluate every alert rule (built-in, YAML file and warehouse) but the backup "
    "rules (backup_monitor's), store fired and resolved alerts, send their notices, and retry "
    "notices that failed.",
)
def alert_rule_sensor(context: dg.SensorEvaluationContext, notifier: NotifierResource):
    rules = rules_of(context, notifier, backup=False)
    evaluator = notifier.evaluator(context.log, context.instance)
    retried = evaluator.dispatcher.retry_due() if evaluator.dispatcher else []
    if not rules:
        return dg.SkipReason(
            f"no alert rules: set TIMBEL_ALERT_RULES_FILE or `timbel alerts rules add`; "
            f"{len(retried)} notices retried"
        )
    return dg.SkipReason(tick_text(context, evaluator, rules) + f"; {len(retried)} notices retried")


@dg.sensor(
    name="delivery_notification_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notify subscribers of builds that finished and deployments that completed "
    "since the last tick (the first tick starts from now, it does not replay history).",
)
def delivery_notification_sensor(context: dg.SensorEvaluationContext, notifier: NotifierResource):
    # lazy: notify.activity loads SQLAlchemy; the code location loads without it
    from timbel_dagster.notify.activity import finished_since, start_marks

    if not context.cursor:
        marks = start_marks(dt.datetime.now(dt.UTC))
        context.update_cursor(_dump_marks(marks))
        return dg.SkipReason("first tick: notices start from now")
    marks = {
        name: (dt.datetime.fromisoformat(at), last_id)
        for name, (at, last_id) in json.loads(context.cursor).items()
    }
    with notifier.engine().connect() as connection:
        messages, marks = finished_since(connection, marks)
    dispatcher = notifier.dispatcher(context.log)
    sent = 0
    for message in messages:
        results = dispatcher.send(message)
        sent += sum(1 for r in results if r.status == "sent")
    # The marks move only after every message was handed to the dispatcher, which records
    # each one: a crash before this line re-sends nothing (the dedupe keys are stored).
    context.update_cursor(_dump_marks(marks))
    return dg.SkipReason(f"{len(messages)} finished builds and deployments, {sent} notices sent")


def _dump_marks(marks) -> str:
    return json.dumps({name: [at.isoformat(), last_id] for name, (at, last_id) in marks.items()})


@dg.run_failure_sensor(
    name="run_failure_notifier",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notify subscribers of `run_failed` when a Dagster run fails.",
)
def run_failure_notifier(context: dg.RunFailureSensorContext, notifier: NotifierResource):
    # lazy: notify.messages loads SQLAlchemy; the code location loads without it
    from timbel_dagster.notify.messages import Message

    run = context.dagster_run
    error = context.failure_event.message or "the run failed"
    dispatcher = notifier.dispatcher(context.log)
    url = f"{dispatcher.public_url}/runs/{run.run_id}" if dispatcher.public_url else None
    dispatcher.send(
        Message(
            event="run_failed",
            key=f"run:{run.run_id}:failed",
            title=f"Dagster run of {run.job_name} failed",
            severity="high",
            context={"job": run.job_name, "run_id": run.run_id, "error": error[:500]},
            url=url,
        )
    )
