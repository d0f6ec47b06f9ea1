"""Warehouse facts alert rules can watch: named queries that return labelled values.

Each fact takes the rule's `params` and the evaluation time and returns one observation per
label set; the rule's threshold decides which are active.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.rules import parse_duration
from timbel_dagster.notify.staleness import INSTANCE_FACTS
from timbel_dagster.security.history import open_by_deployed_image
from timbel_dagster.slo.alerts import slo_burn_rate
from timbel_dagster.warehouse.backup.base_state import base_backup_state
from timbel_dagster.warehouse.backup.catalogue import catalogue_state
from timbel_dagster.warehouse.schema.models import Base, Pipeline, PipelineExecution

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

Observation = tuple[dict[str, str], float]
Fact = Callable[["Connection", dict[str, Any], dt.datetime], list[Observation]]


class FactUnavailableError(RuntimeError):
    """The warehouse lacks what a fact reads (for example a table of a later feature)."""


def _table(connection: Connection, name: str) -> Any:
    from sqlalchemy import inspect

    if name not in Base.metadata.tables or not inspect(connection).has_table(name):
        raise FactUnavailableError(f"the warehouse has no {name} table yet")
    return Base.metadata.tables[name]


def pipeline_failure_rate(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Per pipeline: failed and aborted over finished executions that completed in the last
    `window` (default 1h), where at least `min_executions` (default 5) finished."""
    from sqlalchemy import case, func, select

    window = parse_duration(params.get("window", "1h"))
    minimum = int(params.get("min_executions", 5))
    failed = func.sum(case((PipelineExecution.status.in_(("failed", "aborted")), 1), else_=0))
    rows = connection.execute(
        select(Pipeline.name, Pipeline.ci_system, func.count(), failed)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(PipelineExecution.status.in_(("success", "failed", "aborted")))
        .where(PipelineExecution.completed_at >= now - window)
        .where(PipelineExecution.completed_at < now)
        .group_by(Pipeline.name, Pipeline.ci_system)
    )
    return [
        ({"pipeline": name, "ci_system": system}, (bad or 0) / total)
        for name, system, total, bad in rows
        if total >= minimum
    ]


def _recent_hours(connection: Connection, table: Any, params: dict[str, Any], now: dt.datetime):
    """The condition selecting the stored hours a fact looks at: the latest hour at or
    before `now` and the hours of `window` (default 1h: that hour alone) that lead to it.
    None when nothing is stored yet."""
    from sqlalchemy import func, select

    latest = connection.execute(select(func.max(table.c.hour)).where(table.c.hour <= now)).scalar()
    if latest is None:
        return None
    window = parse_duration(params.get("window", "1h"))
    return (table.c.hour > latest - window) & (table.c.hour <= latest)


def namespace_cpu_quota_ratio(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Per cluster and namespace with a CPU quota: the highest hourly peak of CPU used over
    the quota, in the latest stored hours (`window`)."""
    from sqlalchemy import func, select

    usage = _table(connection, "namespace_usage")
    recent = _recent_hours(connection, usage, params, now)
    if recent is None:
        return []
    ratio = func.max(usage.c.cpu_used_cores_max / usage.c.cpu_quota_cores)
    rows = connection.execute(
        select(usage.c.cluster, usage.c.namespace, ratio)
        .where(recent, usage.c.cpu_quota_cores > 0)
        .group_by(usage.c.cluster, usage.c.namespace)
    )
    return [({"cluster": c, "namespace": n}, float(value)) for c, n, value in rows]


def crash_looping_workloads(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Per workload: its most crash-looping pods in one hour of the latest stored hours."""
    from sqlalchemy import func, select

    status = _table(connection, "workload_status")
    recent = _recent_hours(connection, status, params, now)
    if recent is None:
        return []
    rows = connection.execute(
        select(
            status.c.cluster,
            status.c.namespace,
            status.c.workload,
            func.max(status.c.crash_looping_pods),
        )
        .where(recent, status.c.crash_looping_pods > 0)
        .group_by(status.c.cluster, status.c.namespace, status.c.workload)
    )
    return [
        ({"cluster": c, "namespace": n, "workload": w}, float(count)) for c, n, w, count in rows
    ]


def critical_vulnerabilities_in_prod(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Per service: the open CRITICAL findings of the image of its latest successful prod
    deployment (as of the newest scan of that image; images never scanned are left out).
    With `window`, only findings first seen in that window count; `environment` (default
    prod) and `severity` (default CRITICAL) choose others."""

    _table(connection, "vulnerability_findings")  # security scanning stores this table
    window = params.get("window")
    found = open_by_deployed_image(
        connection,
        environment=str(params.get("environment", "prod")),
        severity=str(params.get("severity", "CRITICAL")).upper(),
        first_seen_after=now - parse_duration(window) if window else None,
        at=now,
    )
    return [({"service": s, "image": image}, float(count)) for s, image, count in found]


def _backups(connection: Connection, now: dt.datetime) -> Any:
    state = catalogue_state(connection, now)
    if state is None:
        raise FactUnavailableError("the warehouse has no backup status yet (`timbel db upgrade`)")
    return state


def backup_age(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Seconds since the last good backup (since the first attempt when none was good). No
    observation where no backup was ever tried: an installation that never set backups up is
    not alerted (the nightly schedule is off by default)."""
    state = _backups(connection, now)
    if state.first_attempt_at is None:
        return []
    since = state.last_good_at or state.first_attempt_at
    return [({"last_good": state.last_good_id or "none"}, (now - since).total_seconds())]


def backup_failed(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """1 when the newest backup failed, labelled with it and its error; nothing once a newer
    backup is good (which resolves the alert)."""
    state = _backups(connection, now)
    if state.latest_status != "failed":
        return []
    error = (state.latest_error or "unknown error").splitlines()[0][:300]
    return [({"backup": state.latest_id or "", "error": error}, 1.0)]


def base_backup_age(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Seconds since the newest base backup was taken (`backup.base` in the audit log; since
    the first failed one when none was taken). No observation where no base backup was ever
    tried: the weekly schedule is off by default."""
    state = base_backup_state(connection, now)
    if state.first_attempt_at is None:
        return []
    since = state.taken.at if state.taken else state.first_attempt_at
    last = (state.taken.target or "unknown") if state.taken else "none"
    return [({"last_base": last}, (now - since).total_seconds())]


def base_backup_failed(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """1 when the newest base backup attempt failed (`backup.base_fail` after the newest
    `backup.base`), labelled with when and its error; nothing once a newer base backup is
    taken (which resolves the alert)."""
    state = base_backup_state(connection, now)
    if not state.latest_failed or state.failed is None:
        return []
    error = str(state.failed.details.get("error") or "unknown error").splitlines()[0][:300]
    failed_at = state.failed.at.isoformat(timespec="seconds")
    return [({"failed_at": failed_at, "error": error}, 1.0)]


FACTS: dict[str, Fact] = {
    "backup_age": backup_age,
    "backup_failed": backup_failed,
    "base_backup_age": base_backup_age,
    "base_backup_failed": base_backup_failed,
    "pipeline_failure_rate": pipeline_failure_rate,
    "namespace_cpu_quota_ratio": namespace_cpu_quota_ratio,
    "crash_looping_workloads": crash_looping_workloads,
    "critical_vulnerabilities_in_prod": critical_vulnerabilities_in_prod,
    # SLO burn rates, from the latest `slo/slo_status` (slo/alerts.py).
    "slo_burn_rate": slo_burn_rate,
}


# The facts that read the Dagster instance take no warehouse connection: the evaluator calls
# them with its clock (notify/alerting.py). Listed here too, so rules name them the same way;
# called as warehouse facts (no clock) they say where they can be evaluated.
def _without_clock(fact: Callable[..., list[Observation]]) -> Fact:
    return lambda _connection, params, now: fact(None, params, now)


FACTS |= {name: _without_clock(fact) for name, fact in INSTANCE_FACTS.items()}

# The facts the `backup_monitor` sensor evaluates (their rules are left to it, not to
# alert_rule_sensor, so one alert is never advanced by two sensors at once).
BACKUP_FACTS = frozenset({"backup_age", "backup_failed", "base_backup_age", "base_backup_failed"})
