"""`timbel metrics collect`: the cluster assets and the cost allocation for the last N
hours, as one in-process run of the `cluster_metrics` job in the instance the UI shows, and
what they stored."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.jobs.definitions import cluster_metrics_job
from timbel_dagster.partitions import CLUSTERS, check_history_start, hour_key, range_tags
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.runs import QUIET, open_instance, rows_written, run_warnings
from timbel_dagster.settings import Settings
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.store.cluster_usage import usage_report

MAX_HOURS = 24 * 31


def register_clusters(instance: Any, clusters: list[str]) -> list[str]:
    """Add the clusters missing from the `clusters` partitions; return `clusters` in the
    partitions' order (the order a range over the cluster dimension follows)."""
    known = list(instance.get_dynamic_partitions(CLUSTERS.name))
    instance.add_dynamic_partitions(CLUSTERS.name, [c for c in clusters if c not in known])
    return [c for c in instance.get_dynamic_partitions(CLUSTERS.name) if c in clusters]


def cluster_range_tags(order: list[str], start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """Tags for one run over the clusters `order[0]..order[-1]` and the hours [start, end).
    A range covers every cluster between its ends, so `order` must be the partitions' order."""
    return range_tags(
        f"{order[0]}|{hour_key(start)}", f"{order[-1]}|{hour_key(end - dt.timedelta(hours=1))}"
    )


def window_text(start: dt.datetime, end: dt.datetime) -> str:
    """The hours [start, end) as people read them, to the minute in UTC, the end's date only
    when it is another day: `2026-12-04 23:00 to 2026-12-05 00:00 UTC`,
    `2026-12-05 01:00 to 03:00 UTC`."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} to {until} UTC"


def once_each(echo: Callable[[str], None]) -> Callable[[str], None]:
    """`echo` that prints each warning line once: discovery and every cluster asset of the
    run report the same notice (a default cluster name, a cluster without series)."""
    said: set[str] = set()

    def say(line: str) -> None:
        if line.startswith("warning:"):
            if line in said:
                return
            said.add(line)
        echo(line)

    return say


def collect_metrics(
    settings: Settings,
    hours: int,
    echo: Callable[[str], None],
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Materialize `cluster/*` for the `hours` completed hours before `now` on every
    cluster, and report usage and cost per cluster and namespace."""

    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"--hours must be between 1 and {MAX_HOURS}, not {hours}")
    migrate.upgrade(settings.database_url, actor=settings.timbel_user)
    sources = DeliverySourcesResource()
    source = sources.metrics_source()
    clusters = source.cluster_names(now)
    echo = once_each(echo)
    for notice in source.notices:
        echo(f"warning: {notice}")
    if not clusters:
        raise LookupError(f"{source.name}: no clusters found to collect metrics from")
    end = (now or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(hours=hours)
    check_history_start(start.date(), settings.timbel_history_start)
    instance = open_instance(settings.dagster_home)
    started = time.perf_counter()
    try:
        order = register_clusters(instance, clusters)
        echo(
            f"Collecting {hours} h ({window_text(start, end)}) of {len(order)} cluster(s) "
            f"from {source.name} ..."
        )
        # The `cluster_metrics` job, as the schedule runs it: the runs page names it.
        job = build_definitions(settings.timbel_history_start).resolve_job_def(
            cluster_metrics_job.name
        )
        result = job.execute_in_process(
            instance=instance,
            resources={
                "warehouse": WarehouseResource(database_url=settings.database_url),
                "sources": sources,
            },
            run_config=QUIET,
            tags=cluster_range_tags(order, start, end)
            | {
                "timbel/launched_by": "timbel metrics collect",
                "timbel/actor": settings.timbel_user,
            },
        )
        for warning in run_warnings(instance, result.run_id):
            echo(f"warning: {warning}")
    finally:
        instance.dispose()
    with get_engine(settings.database_url, read_only=True).connect() as connection:
        usage = usage_report(connection, source.name, order, start, end)
    return {
        "source": source.name,
        "clusters": order,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "hours": hours,
        "run_id": result.run_id,
        "seconds": round(time.perf_counter() - started, 2),
        "rows_written": rows_written(result),
        "namespaces": usage,
    }
