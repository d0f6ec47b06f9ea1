"""`timbel clusters`: the configured clusters, read live."""

from __future__ import annotations

import sys

import click

from timbel_dagster.cli.common import friendly_errors, parse_since, print_json, settings_or_exit
from timbel_dagster.cli.tables import Column, count, print_table, right, say
from timbel_dagster.cluster_check import check_clusters


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
    # lazy: resources.kubernetes loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.kubernetes import KubernetesResource

    settings_or_exit()
    since = parse_since(events_since)
    reports = check_clusters(KubernetesResource(), cluster, since)
    if as_json:
        print_json(reports)
    else:
        print_table(
            reports,
            [
                Column("CLUSTER", "cluster"),
                Column(
                    "STATE",
                    lambda r: (
                        "UNREACHABLE" if "error" in r else ("ok" if r["healthy"] else "PROBLEMS")
                    ),
                ),
                Column("VERSION", lambda r: r.get("version")),
                right("NODES", lambda r: _of(r, "nodes", "nodes_not_ready"), str),
                right("PODS", lambda r: r.get("pods"), count),
                right("CRASHING", lambda r: _len(r, "pods_crash_looping"), count),
                right("NOT RUNNING", lambda r: _len(r, "pods_not_running"), count),
                right("STUCK", lambda r: _len(r, "rollouts_stuck"), count),
                right("WARNINGS", lambda r: r.get("warning_events"), count),
            ],
            empty="no clusters: list them in TIMBEL_CLUSTERS_FILE (a YAML `clusters:` list)",
        )
        for r in reports:
            if "error" in r:
                say(f"  {r['cluster']}: {r['error']}")
                continue
            for key in ("nodes_not_ready", "pods_crash_looping", "rollouts_stuck"):
                for item in r[key]:
                    say(f"  {r['cluster']}: {key.replace('_', ' ')}: {item}")
    if not all(r["healthy"] for r in reports):
        sys.exit(1)


def _len(report: dict, key: str) -> int | None:
    return len(report[key]) if key in report else None


def _of(report: dict, total: str, bad: str) -> str:
    """`5` or `4/5 ready` when some are not."""
    if total not in report:
        return "-"
    if not report[bad]:
        return str(report[total])
    return f"{report[total] - len(report[bad])}/{report[total]} ready"
