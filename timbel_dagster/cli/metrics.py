"""`timbel metrics`: cluster usage and cost."""

from __future__ import annotations

import datetime as dt

import click

from timbel_dagster.cli.common import (
    echo_for,
    friendly_errors,
    parse_since,
    print_json,
    settings_or_exit,
)
from timbel_dagster.cli.tables import (
    Column,
    cores,
    count,
    duration,
    gib,
    print_table,
    right,
    say,
    usd,
)
from timbel_dagster.metrics_export import export_range
from timbel_dagster.notify.rules import parse_duration
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import check_connection, get_engine


@click.group()
def metrics() -> None:
    """Cluster usage and cost."""


@metrics.command()
@click.option("--hours", default=1, show_default=True, help="Completed hours to collect.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def collect(hours: int, as_json: bool) -> None:
    """Collect node, pod, namespace and workload metrics and allocate their cost for the last
    N hours, then print usage and cost per cluster and namespace."""
    # lazy: metrics_collect loads Dagster; `timbel --help` loads without it
    from timbel_dagster.metrics_collect import collect_metrics, window_text

    settings = settings_or_exit()
    report = collect_metrics(settings, hours, echo=echo_for(as_json))
    if as_json:
        print_json(report)
        return
    total = sum(r["cost_usd"] for r in report["namespaces"])
    print_table(
        report["namespaces"],
        [
            Column("CLUSTER", "cluster"),
            Column("NAMESPACE", "namespace"),
            Column("TENANT", "tenant"),
            right("CPU USED", "cpu_cores_used", cores),
            right("CPU REQ", "cpu_cores_requested", cores),
            right("MEM GiB", "memory_gib_used", gib),
            right("MEM REQ", "memory_gib_requested", gib),
            right("COST", "cost_usd", usd),
        ],
        empty=f"no namespace usage in the last {report['hours']} h: check that Prometheus "
        "scrapes kube-state-metrics and cAdvisor (or set TIMBEL_SAMPLE_DATA=true)",
    )
    window = window_text(
        dt.datetime.fromisoformat(report["start"]), dt.datetime.fromisoformat(report["end"])
    )
    say(
        f"{len(report['clusters'])} cluster(s), {report['hours']} h ({window}) from "
        f"{report['source']}: {usd(total)} allocated; run {report['run_id'][:8]} in "
        f"{duration(report['seconds'])}"
    )


@metrics.command()
@click.argument("query")
@click.option("--since", default="1d", show_default=True, help="7d, 12h, or an ISO date/time.")
@click.option("--until", default=None, help="ISO date/time (default: now).")
@click.option("--step", default="60s", show_default=True, help="Resolution: 15s, 1m, 5m ...")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def export(query: str, since: str, until: str | None, step: str, as_json: bool) -> None:
    """Copy the samples of a PromQL QUERY from Prometheus into the warehouse."""
    # lazy: resources.prometheus loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.prometheus import PrometheusResource

    settings = settings_or_exit()
    start = parse_since(since)
    end = parse_since(until) if until else dt.datetime.now(dt.UTC)
    assert start is not None and end is not None
    resolution = parse_duration(step)
    if resolution <= dt.timedelta(0):
        raise ValueError(f"--step must be positive, not {step!r}")
    check_connection(settings.database_url)
    migrate.upgrade(settings.database_url, actor=settings.timbel_user)
    client = PrometheusResource().client()
    report = export_range(
        client,
        get_engine(settings.database_url),
        query,
        start.replace(microsecond=0),
        end.replace(microsecond=0),
        resolution,
        echo=echo_for(as_json),
    )
    if as_json:
        print_json(report)
        return
    click.echo(
        f"{report['series']:,} series, {report['samples']:,} samples in {report['queries']:,} "
        f"queries ({report['rejected_queries']:,} rejected), {duration(report['seconds'])}, "
        f"{count(report['samples_per_second'])} samples/s"
    )
