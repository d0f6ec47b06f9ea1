"""The status of each SLO at one moment: counts in, SLI, budget and burn rates out; and the
history of statuses in the warehouse (`slo_status`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.slo import budget
from timbel_dagster.slo.counts import Counts, InstantQueries, prometheus_counts, warehouse_counts
from timbel_dagster.slo.spec import Slo, duration_text
from timbel_dagster.warehouse.read.scope import service_visible
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.slo import BURN_COLUMNS, SloStatus
from timbel_dagster.warehouse.store.upsert import UpsertResult, bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

SLO_WINDOW = "slo"  # the label of the SLO's own window among the counted windows


class PrometheusNotConfiguredError(RuntimeError):
    """An SLO reads Prometheus and none is configured."""


@dataclass(frozen=True)
class Status:
    service: str
    slo: str
    kind: str
    source: str
    objective: float
    window: dt.timedelta
    evaluated_at: dt.datetime
    good: float
    total: float
    sli: float | None
    budget_remaining: float | None
    burn: dict[str, float | None]  # BURN_WINDOWS label -> burn rate, None without traffic
    alert: str | None  # page | ticket | None

    @property
    def key(self) -> str:
        return f"{self.service}/{self.slo}"


def windows_of(slo: Slo) -> dict[str, dt.timedelta]:
    """The windows an SLO is counted over: every burn-rate window and its own."""
    return budget.BURN_WINDOWS | {SLO_WINDOW: slo.window}


def status_of(slo: Slo, counts: dict[str, Counts], at: dt.datetime) -> Status:
    """An SLO's status from its counts per window (as `windows_of` labels them)."""
    whole = counts[SLO_WINDOW]
    burn = {
        label: budget.burn_rate(slo.objective, counts[label].good, counts[label].total)
        for label in budget.BURN_WINDOWS
    }
    alert = next((s for s in budget.SEVERITIES if budget.firing(burn, slo.window, s)), None)
    return Status(
        service=slo.service,
        slo=slo.name,
        kind=slo.sli.kind,
        source=slo.sli.source,
        objective=slo.objective,
        window=slo.window,
        evaluated_at=at,
        good=whole.good,
        total=whole.total,
        sli=budget.sli(whole.good, whole.total),
        budget_remaining=budget.budget_remaining(slo.objective, whole.good, whole.total),
        burn=burn,
        alert=alert,
    )


def evaluate(
    slos: list[Slo], engine: Engine, prometheus: InstantQueries | None, at: dt.datetime
) -> list[Status]:
    """Every SLO's status at `at`. Prometheus is asked first, then the warehouse read; a
    failed query raises before anything is computed (the caller stores nothing).

    Raises:
        PrometheusNotConfiguredError: an SLO reads Prometheus and `prometheus` is None.
    """
    from_prometheus = [s for s in slos if s.sli.source == "prometheus"]
    counted: dict[str, dict[str, Counts]] = {}
    if from_prometheus:
        if prometheus is None:
            names = ", ".join(s.key for s in from_prometheus)
            raise PrometheusNotConfiguredError(
                f"SLOs {names} read Prometheus and none is configured: set PROMETHEUS_URL"
            )
        counted = prometheus_counts(
            prometheus, from_prometheus, {s.key: windows_of(s) for s in from_prometheus}, at
        )
    from_warehouse = [s for s in slos if s.sli.source == "warehouse"]
    if from_warehouse:
        with engine.connect() as connection:
            for slo in from_warehouse:
                counted[slo.key] = warehouse_counts(connection, slo, windows_of(slo), at)
    return [status_of(slo, counted[slo.key], at) for slo in slos]


def row_of(status: Status) -> dict[str, Any]:
    """A status as its `slo_status` row."""
    return {
        "id": stable_id("slo_status", status.service, status.slo, status.evaluated_at.isoformat()),
        "service": status.service,
        "slo": status.slo,
        "kind": status.kind,
        "source": status.source,
        "objective": status.objective,
        "window_seconds": int(status.window.total_seconds()),
        "evaluated_at": status.evaluated_at,
        "good": status.good,
        "total": status.total,
        "sli": status.sli,
        "budget_remaining": status.budget_remaining,
        "alert": status.alert,
    } | {f"burn_{label}": status.burn[label] for label in BURN_COLUMNS}


def store(connection: Connection, statuses: list[Status]) -> UpsertResult:
    """The statuses as history rows, on the caller's transaction (re-storing one evaluation
    changes nothing)."""
    if not statuses:
        return UpsertResult("slo_status", 0, 0)
    rows = [row_of(s) for s in statuses]
    return bulk_upsert(connection, SloStatus.__table__, rows, ("service", "slo", "evaluated_at"))


def _from_row(row: Any) -> Status:
    return Status(
        service=row["service"],
        slo=row["slo"],
        kind=row["kind"],
        source=row["source"],
        objective=row["objective"],
        window=dt.timedelta(seconds=row["window_seconds"]),
        evaluated_at=row["evaluated_at"],
        good=row["good"],
        total=row["total"],
        sli=row["sli"],
        budget_remaining=row["budget_remaining"],
        burn={label: row[f"burn_{label}"] for label in BURN_COLUMNS},
        alert=row["alert"],
    )


def latest(
    connection: Connection,
    at: dt.datetime | None = None,
    max_age: dt.timedelta | None = None,
    *,
    service: str | None = None,
    tenants: tuple[str, ...] | None = None,
) -> list[Status]:
    """The latest stored status of each SLO (at or before `at`; not older than `max_age`
    before it), by service and name; only `service`'s, and only services `tenants` may see
    (None: every service; `warehouse.read.scope`)."""
    from sqlalchemy import func, select

    table = SloStatus.__table__
    newest = select(table.c.service, table.c.slo, func.max(table.c.evaluated_at).label("at"))
    newest = newest.where(service_visible(table.c.service, tenants))
    if service is not None:
        newest = newest.where(table.c.service == service)
    if at is not None:
        newest = newest.where(table.c.evaluated_at <= at)
        if max_age is not None:
            newest = newest.where(table.c.evaluated_at >= at - max_age)
    newest = newest.group_by(table.c.service, table.c.slo).subquery()
    query = (
        select(table)
        .join(
            newest,
            (table.c.service == newest.c.service)
            & (table.c.slo == newest.c.slo)
            & (table.c.evaluated_at == newest.c.at),
        )
        .order_by(table.c.service, table.c.slo)
    )
    return [_from_row(row) for row in connection.execute(query).mappings()]


def as_dict(status: Status) -> dict[str, Any]:
    """A status as `timbel slo status --json` shows it."""
    return {
        "service": status.service,
        "slo": status.slo,
        "kind": status.kind,
        "source": status.source,
        "objective": status.objective,
        "window": duration_text(status.window),
        "evaluated_at": status.evaluated_at.isoformat(),
        "good": status.good,
        "total": status.total,
        "sli": status.sli,
        "error_budget_remaining": status.budget_remaining,
        "burn_rates": dict(status.burn),
        "alert": status.alert,
    }
