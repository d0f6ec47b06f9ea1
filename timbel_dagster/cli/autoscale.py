"""`timbel autoscale`: HPA and VPA settings for a workload from a policy template."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import friendly_errors, print_json, writable_engine
from timbel_dagster.cli.tables import Column, print_table
from timbel_dagster.deploy import autoscaling, rollout
from timbel_dagster.warehouse.audit.chain import append_event


@click.group()
def autoscale() -> None:
    """Autoscaling (HPA autoscaling/v2, VPA autoscaling.k8s.io/v1) from templates."""


@autoscale.command("apply")
@click.argument("workload")
@click.option("--template", type=click.Choice(["web", "worker", "batch"]), required=True)
@click.option("--cluster", "clusters", multiple=True, required=True)
@click.option("--namespace", default=None, help="Default: the namespace of the Deployment.")
@click.option("--min", "min_replicas", type=int, default=None)
@click.option("--max", "max_replicas", type=int, default=None)
@click.option("--cpu-target", type=int, default=None, help="Average CPU utilisation, percent.")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def apply_command(
    workload: str,
    template: str,
    clusters: tuple[str, ...],
    namespace: str | None,
    min_replicas: int | None,
    max_replicas: int | None,
    cpu_target: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Validate the template's HPA and VPA for WORKLOAD on every --cluster, then apply them
    (idempotent); nothing is applied anywhere if one cluster's manifests are invalid."""
    # lazy: resources.kubernetes loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.kubernetes import KubernetesResource
    from timbel_dagster.tenants.apply import apply_manifests

    settings, engine = writable_engine()
    chosen = autoscaling.policy(
        template, min_replicas=min_replicas, max_replicas=max_replicas, cpu_utilization=cpu_target
    )
    kubernetes = KubernetesResource()
    plans = {}
    for cluster in clusters:  # validate everything before applying anything
        with kubernetes.client(cluster) as client:
            where = namespace or rollout.find_deployment(client, workload)["metadata"]["namespace"]
            found = autoscaling.manifests(chosen, where, workload)
            autoscaling.validate(found, client.version())
        plans[cluster] = found
    report = {}
    for cluster, found in plans.items():
        with kubernetes.client(cluster) as client:
            outcomes = apply_manifests(client, found, dry_run=dry_run)
        report[cluster] = [o.as_dict() for o in outcomes]
    if not dry_run:
        with engine.begin() as connection:
            append_event(
                connection,
                actor=settings.timbel_user,
                action="autoscale.apply",
                target=workload,
                details={"template": template, "clusters": report},
            )
    if as_json:
        print_json(report)
        return
    print_table(
        [o | {"cluster": cluster} for cluster, outcomes in report.items() for o in outcomes],
        [
            Column("CLUSTER", "cluster"),
            Column("KIND", "kind"),
            Column("OBJECT", lambda o: f"{o['namespace']}/{o['name']}"),
            Column("ACTION", "action"),
        ],
        empty="nothing to apply",
        footer="dry run: nothing was changed" if dry_run else None,
    )
