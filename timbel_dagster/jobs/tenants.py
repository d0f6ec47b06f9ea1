"""Op job `provision_tenant`: a team's namespace with quota, limits, network policy and
access on each cluster named, checked in full before anything is applied.

Run in process by a caller that checked its acting user (`jobs.run_actor.acting_as`); a
launch from the Dagster UI is refused, and audited, since its `timbel/actor` tag is only a
claim (`timbel tenant create --as USER` calls the same function directly). The acting user
must be a user of the warehouse. Quantities are strings: `cpu: "8"`, `memory: "16Gi"`.
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.run_actor import run_actor
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.tenants.manifests import (
    DEFAULT_INGRESS_NAMESPACE,
    DEFAULT_PODS,
    DEFAULT_ROLE,
)


class TenantConfig(dg.Config):
    name: str  # a DNS-1123 label; it names the namespace
    cpu: str  # cores for requests and limits: "8", "1.5", "500m"
    memory: str  # "16Gi", "512Mi", "8G"
    users: list[str]  # user names of the warehouse, bound to `role`
    clusters: list[str] = []  # cluster names of the clusters file
    groups: list[str] = []  # and/or every cluster of these groups (dev, staging, prod)
    pods: int = DEFAULT_PODS
    role: str = DEFAULT_ROLE  # the ClusterRole bound in the namespace
    ingress_namespace: str = DEFAULT_INGRESS_NAMESPACE
    dry_run: bool = False  # check and report what would change, change nothing


@dg.op(description="Check the tenant on every cluster, then apply it everywhere and record it.")
def provision(
    context: dg.OpExecutionContext,
    config: TenantConfig,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
) -> dict:
    # lazy: tenants loads SQLAlchemy; the code location loads without it
    from timbel_dagster.tenants import store
    from timbel_dagster.tenants.provision import REFUSALS, TenantRequest, provision_tenant

    actor = run_actor(context.run.tags)
    if not actor.verified:
        claim = f"its timbel/actor tag {actor.claim!r} is only a claim" if actor.claim else ""
        error = PermissionError(
            "provision_tenant needs a verified acting user: this run was not launched by the "
            f"timbel command{' and ' + claim if claim else ''}; use `timbel tenant create "
            f"{config.name} --as USER`"
        )
        store.record_attempt(
            warehouse.engine(), "tenant.create.refused", config.name, actor.name, error,
            actor.details,
        )  # fmt: skip
        raise dg.Failure(description=f"{type(error).__name__}: {error}")

    request = TenantRequest(
        name=config.name,
        cpu=config.cpu,
        memory=config.memory,
        users=tuple(config.users),
        clusters=tuple(config.clusters),
        groups=tuple(config.groups),
        pods=config.pods,
        role=config.role,
        ingress_namespace=config.ingress_namespace,
    )
    try:
        result = provision_tenant(
            warehouse.engine(),
            kubernetes,
            request,
            actor.name,
            dry_run=config.dry_run,
            log=context.log.info,
        )
    except REFUSALS as error:
        # What a person can fix reads as one line in the UI, not as a traceback.
        raise dg.Failure(description=f"{type(error).__name__}: {error}") from error
    counts: dict[str, int] = {}
    for cluster in result["clusters"]:
        for obj in cluster["objects"]:
            counts[obj["action"]] = counts.get(obj["action"], 0) + 1
    context.add_output_metadata(
        {
            "tenant": result["tenant"],
            "action": result["action"] or "dry run",
            "clusters": dg.MetadataValue.int(len(result["clusters"])),
            **{f"objects_{k}": dg.MetadataValue.int(v) for k, v in sorted(counts.items())},
        }
    )
    return result


@dg.job(
    executor_def=dg.in_process_executor,
    description="Provision (or update) a tenant: Namespace, ResourceQuota, LimitRange, "
    "default-deny NetworkPolicy and RoleBindings on each cluster, validated first.",
)
def provision_tenant():
    provision()
