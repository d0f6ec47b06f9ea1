"""Good and valid events of an SLO over each window: from Prometheus or the warehouse.

Prometheus: one instant query `sum(increase(SELECTOR[WINDOW]))` per selector and window, at
the evaluation time. A selector that matches no series in the window is no traffic (0), so
the SLI is unknown, not 100 %.

Warehouse: pipeline executions of the service's pipelines (or the SLO's `pipelines`) that
finished (success, failed or aborted) in the window, by `completed_at`: successful ones are
good for `pipeline_success`; for `pipeline_duration` those with a duration, at most the
threshold long being good. One query per SLO counts every window.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from timbel_dagster.slo.spec import Slo, duration_text
from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

FINISHED = ("success", "failed", "aborted")


class InstantQueries(Protocol):
    """What the Prometheus counts need of a client (resources/prometheus.PrometheusClient)."""

    def instant_query(self, query: str, at: dt.datetime) -> list[tuple[dict[str, str], float]]:
        """The instant vector of `query` at `at`: each series' labels and value."""
        ...


@dataclass(frozen=True)
class Counts:
    good: float
    total: float


def increase_query(selector: str, window: dt.timedelta) -> str:
    """The PromQL of how many events `selector` counted over `window`, summed over series."""
    return f"sum(increase({selector}[{duration_text(window)}]))"


def prometheus_queries(slo: Slo, windows: dict[str, dt.timedelta]) -> list[str]:
    """Every query the SLO's counts need (two per window)."""
    selectors = [slo.sli.total, slo.sli.good or slo.sli.bad]
    return [increase_query(s, w) for w in windows.values() for s in selectors if s]


def prometheus_counts(
    client: InstantQueries,
    slos: list[Slo],
    windows_of: dict[str, dict[str, dt.timedelta]],
    at: dt.datetime,
    workers: int = 4,
) -> dict[str, dict[str, Counts]]:
    """Per SLO key and window label, the good and valid events counted by Prometheus.

    Queries run on a small thread pool; a failed query raises (the typed error of the client
    names Prometheus and the query), so nothing half-counted is stored."""
    wanted = sorted({q for slo in slos for q in prometheus_queries(slo, windows_of[slo.key])})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = dict(
            zip(wanted, pool.map(lambda q: client.instant_query(q, at), wanted), strict=True)
        )

    def value(query: str) -> float:
        # `sum` of no series is an empty vector: nothing was counted.
        return sum(v for _, v in answers[query])

    found: dict[str, dict[str, Counts]] = {}
    for slo in slos:
        per_window = {}
        for label, window in windows_of[slo.key].items():
            total = value(increase_query(slo.sli.total, window))
            if slo.sli.good:
                good = value(increase_query(slo.sli.good, window))
            else:
                good = total - value(increase_query(slo.sli.bad, window))
            # Counters scraped a moment apart can disagree by a few events: clamp, so the
            # SLI stays a share.
            per_window[label] = Counts(min(max(good, 0.0), total), total)
        found[slo.key] = per_window
    return found


def warehouse_counts(
    connection: Connection, slo: Slo, windows: dict[str, dt.timedelta], at: dt.datetime
) -> dict[str, Counts]:
    """Per window label, the SLO's good and valid pipeline executions finished in
    (at - window, at]."""
    from sqlalchemy import and_, case, func, select

    executions = PipelineExecution
    valid = executions.status.in_(FINISHED)
    if slo.sli.kind == "pipeline_success":
        good = executions.status == "success"
    elif slo.sli.kind == "pipeline_duration":
        valid = and_(valid, executions.duration.is_not(None))
        good = executions.duration <= slo.sli.threshold_seconds
    else:
        raise ValueError(f"slo {slo.key}: {slo.sli.kind} is not counted in the warehouse")
    columns = []
    for window in windows.values():
        inside = executions.completed_at > at - window
        columns += [
            func.coalesce(func.sum(case((inside, 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(inside, good), 1), else_=0)), 0),
        ]
    query = (
        select(*columns)
        .select_from(executions)
        .join(Pipeline, Pipeline.id == executions.pipeline_id)
        .where(Pipeline.service == slo.service, valid)
        .where(executions.completed_at > at - max(windows.values()))
        .where(executions.completed_at <= at)
    )
    if slo.sli.pipelines:
        query = query.where(Pipeline.name.in_(slo.sli.pipelines))
    row = connection.execute(query).one()
    return {
        label: Counts(good=float(row[2 * i + 1]), total=float(row[2 * i]))
        for i, label in enumerate(windows)
    }
