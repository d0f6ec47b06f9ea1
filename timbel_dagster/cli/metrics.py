"""`timbel metrics`: cluster usage and cost."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import echo_for, friendly_errors, print_json, settings_or_exit


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
    from timbel_dagster.metrics_collect import collect_metrics

    settings = settings_or_exit()
    report = collect_metrics(settings, hours, echo=echo_for(as_json))
    if as_json:
        print_json(report)
        return
    header = (
        f"{'CLUSTER':<16} {'NAMESPACE':<14} {'TENANT':<12} {'CPU USED':>9} {'CPU REQ':>8} "
        f"{'MEM GiB':>8} {'MEM REQ':>8} {'COST USD':>9}"
    )
    click.echo(header)
    for row in report["namespaces"]:
        click.echo(
            f"{row['cluster']:<16} {row['namespace']:<14} {row['tenant']:<12} "
            f"{row['cpu_cores_used']:>9.3f} {row['cpu_cores_requested']:>8.3f} "
            f"{row['memory_gib_used']:>8.2f} {row['memory_gib_requested']:>8.2f} "
            f"{row['cost_usd']:>9.4f}"
        )
    total = sum(r["cost_usd"] for r in report["namespaces"])
    click.echo(
        f"{len(report['clusters'])} cluster(s), {report['hours']} h from {report['source']}: "
        f"{total:.4f} USD allocated; run {report['run_id'][:8]} in {report['seconds']}s"
    )
