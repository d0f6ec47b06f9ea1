"""`timbel clusters`: the configured clusters, read live."""

from __future__ import annotations

import sys

import click

from timbel_dagster.cli.common import friendly_errors, parse_since, print_json, settings_or_exit


@click.group()
def clusters() -> None:
    """The clusters of TIMBEL_CLUSTERS_FILE."""


@clusters.command()
@click.option("--cluster", default=None, help="Only this cluster.")
@click.option("--events-since", default="1h", show_default=True, help="Warning events window.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def check(cluster: str | None, events_since: str, as_json: bool) -> None:
    """Read each cluster through its API; exit 1 if one is unreachable or unhealthy."""
    from timbel_dagster.cluster_check import check_clusters
    from timbel_dagster.resources.kubernetes import KubernetesResource

    settings_or_exit()
    since = parse_since(events_since)
    reports = check_clusters(KubernetesResource(), cluster, since)
    if as_json:
        print_json(reports)
    else:
        for r in reports:
            if "error" in r:
                click.echo(f"{r['cluster']:<20} UNREACHABLE  {r['error']}")
                continue
            state = "ok" if r["healthy"] else "PROBLEMS"
            click.echo(
                f"{r['cluster']:<20} {state:<9} {r['version']:<10} nodes {r['nodes']} "
                f"(not ready {len(r['nodes_not_ready'])}), pods {r['pods']} (crash-looping "
                f"{len(r['pods_crash_looping'])}, not running {len(r['pods_not_running'])}), "
                f"rollouts stuck {len(r['rollouts_stuck'])}, warnings {r['warning_events']}"
            )
            for key in ("nodes_not_ready", "pods_crash_looping", "rollouts_stuck"):
                for item in r[key]:
                    click.echo(f"    {key.replace('_', ' ')}: {item}")
    if not all(r["healthy"] for r in reports):
        sys.exit(1)
