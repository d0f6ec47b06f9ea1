"""`timbel tenant`: create, delete and list tenants, and report their monthly usage and cost.

`create` and `delete` call the same functions as the `provision_tenant` job, directly (no
Dagster run), acting as `--as` (default TIMBEL_USER), who must be a user of the warehouse and
is the actor of their audit events, as with `timbel deploy`. Clusters are named
explicitly, by `--cluster` or `--group`: there is no default, so a tenant never lands on
production by accident.
"""

from __future__ import annotations

import click

from timbel_dagster.cli.common import (
    connect,
    echo_for,
    friendly_errors,
    print_json,
    writable_engine,
)
from timbel_dagster.cli.deploy import AS_HELP
from timbel_dagster.cli.tables import Column, plural, print_table, right, usd
from timbel_dagster.tenants import store
from timbel_dagster.tenants.manifests import (
    DEFAULT_INGRESS_NAMESPACE,
    DEFAULT_PODS,
    DEFAULT_ROLE,
    render_cpu,
    render_memory,
)
from timbel_dagster.tenants.report import monthly_report


def _users(value: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in value.split(",") if u.strip())


@click.group()
def tenant() -> None:
    """Tenants: a namespace with quota, limits, network policy and access per cluster."""


@tenant.command()
@click.argument("name")
@click.option("--cpu", required=True, help="Cores for requests and limits: 8, 1.5, 500m.")
@click.option("--memory", required=True, help="Memory for requests and limits: 16Gi, 512Mi.")
@click.option("--users", required=True, help="Comma-separated user names bound to --role.")
@click.option("--cluster", "clusters", multiple=True, help="A cluster of the clusters file.")
@click.option("--group", "groups", multiple=True, help="Every cluster of a group (dev, ...).")
@click.option("--pods", type=int, default=DEFAULT_PODS, show_default=True, help="Pod quota.")
@click.option("--role", default=DEFAULT_ROLE, show_default=True, help="ClusterRole for users.")
@click.option(
    "--ingress-namespace",
    default=DEFAULT_INGRESS_NAMESPACE,
    show_default=True,
    help="Namespace of the ingress controller allowed in.",
)
@click.option("--dry-run", is_flag=True, help="Check everything and show what would change.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def create(
    name: str,
    cpu: str,
    memory: str,
    users: str,
    clusters: tuple[str, ...],
    groups: tuple[str, ...],
    pods: int,
    role: str,
    ingress_namespace: str,
    dry_run: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Create (or update) tenant NAME on each cluster named; applying again is safe.

    Everything is checked on every cluster before anything is applied; a refused attempt
    changes nothing and is audited.
    """
    # lazy: resources.kubernetes loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.kubernetes import KubernetesResource
    from timbel_dagster.tenants.provision import TenantRequest, provision_tenant

    settings, engine = writable_engine()
    request = TenantRequest(
        name, cpu, memory, _users(users), clusters, groups, pods, role, ingress_namespace
    )
    result = provision_tenant(
        engine,
        KubernetesResource(),
        request,
        as_user or settings.timbel_user,
        dry_run=dry_run,
        log=echo_for(as_json),
    )
    if as_json:
        print_json(result)
        return
    for cluster in result["clusters"]:
        counts: dict[str, int] = {}
        for obj in cluster["objects"]:
            counts[obj["action"]] = counts.get(obj["action"], 0) + 1
        summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
        click.echo(f"{cluster['cluster']}: {summary}")
    verb = "would be applied (dry run)" if dry_run else f"applied ({result['action']})"
    click.echo(
        f"tenant {result['tenant']} {verb}: cpu {result['cpu']}, memory {result['memory']}, "
        f"users {', '.join(result['users'])}"
    )


@tenant.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def delete(name: str, yes: bool, as_user: str | None, as_json: bool) -> None:
    """Delete tenant NAME: its namespace, and everything in it, on each of its clusters."""
    # lazy: resources.kubernetes loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.kubernetes import KubernetesResource
    from timbel_dagster.tenants.provision import delete_tenant

    settings, engine = writable_engine()
    with engine.connect() as connection:
        row = store.get_tenant(connection, name)
    # An unknown tenant is refused (and audited) by delete_tenant, without a question first.
    if not yes and row is not None and row.status == "provisioned":
        click.confirm(
            f"Delete tenant {name}: namespace {name} and everything in it on "
            f"{', '.join(row.clusters) or 'no cluster'}?",
            abort=True,
        )
    result = delete_tenant(
        engine, KubernetesResource(), name, as_user or settings.timbel_user, log=echo_for(as_json)
    )
    if as_json:
        print_json(result)
    else:
        click.echo(f"tenant {name} deleted")


@tenant.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted tenants.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_tenants(include_deleted: bool, as_json: bool) -> None:
    """Tenants with their quota, users and clusters."""

    with connect() as connection:
        rows = store.list_tenants(connection, include_deleted)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    print_table(
        rows,
        [
            Column("NAME", "name"),
            Column("STATUS", "status"),
            right("CPU", "cpu_cores", render_cpu),
            right("MEMORY", "memory_bytes", lambda b: render_memory(round(b))),
            Column("USERS", "users", wrap=True),
            Column("CLUSTERS", "clusters", wrap=True),
        ],
        empty=(
            "no tenants yet: create one with `timbel tenant create NAME --cpu 4 --memory 8Gi "
            "--users USER --cluster CLUSTER`"
            + ("" if include_deleted else " (`--all` also lists deleted ones)")
        ),
        footer=plural(len(rows), "tenant"),
    )


@tenant.command()
@click.option("--month", default=None, help="YYYY-MM (UTC). Default: every month stored.")
@click.option("--source", default=None, help="Only rows of this source (sample, ...).")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def report(month: str | None, source: str | None, as_json: bool) -> None:
    """Usage and cost per tenant and month, from the cost allocation asset's tables."""

    with connect() as connection:
        rows = monthly_report(connection, month, source)
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        [
            Column("MONTH", "month"),
            Column("TENANT", lambda r: r["tenant"] + ("" if r["managed"] else " *")),
            Column("SOURCE", "source"),
            right("COST", "cost_usd", usd),
            right("CPU CORE-H", "cpu_core_hours", lambda v: f"{v:,.1f}"),
            right("MEM GiB-H", "memory_gib_hours", lambda v: f"{v:,.1f}"),
        ],
        empty="no cost allocation stored for that period: materialize cluster/cost_allocation",
    )
    if not all(r["managed"] for r in rows):
        click.echo("* not a tenant provisioned by Timbel (a namespace label or name)")
