"""Op job `provision_tenant`: a team's namespace with quota, limits, network policy and
access on each cluster named, checked in full before anything is applied.

A run goes ahead only by claiming a run grant for its exact config (`jobs.guard`: `POST
/api/v1/tenants` writes one, `run_grant_sensor` launches it) and acts as the grant's actor; a
launch from the Dagster UI with a config nobody granted is refused and audited (`timbel
tenant create --as USER` calls the same function directly). The acting user must be a user
of the warehouse. Quantities are strings: `cpu: "8"`, `memory: "16Gi"`.
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.guard import NO_RETRIES, claim_grant
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
    from timbel_dagster.tenants.provision import REFUSALS, TenantRequest, provision_tenant

    # Only with a run grant for this exact config, acting as whoever was granted it.
    actor, _ = claim_grant(context, warehouse, "provision_tenant")

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
    tags=NO_RETRIES,
    description="Provision (or update) a tenant: Namespace, ResourceQuota, LimitRange, "
    "default-deny NetworkPolicy and RoleBindings on each cluster, validated first.",
)
def provision_tenant():
    provision()


class DeleteTenantConfig(dg.Config):
    name: str  # the tenant, as provisioned


@dg.op(description="Delete the tenant's namespace on each of its clusters and mark it deleted.")
def remove_tenant(
    context: dg.OpExecutionContext,
    config: DeleteTenantConfig,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
) -> dict:
    # lazy: tenants loads SQLAlchemy; the code location loads without it
    from timbel_dagster.tenants.provision import REFUSALS, delete_tenant

    # Only with a run grant for this exact config (`DELETE /api/v1/tenants/{name}`).
    actor, _ = claim_grant(context, warehouse, "delete_tenant")
    try:
        result = delete_tenant(
            warehouse.engine(), kubernetes, config.name, actor.name, log=context.log.info
        )
    except REFUSALS as error:
        raise dg.Failure(description=f"{type(error).__name__}: {error}") from error
    context.add_output_metadata({"tenant": config.name})
    return result


@dg.job(
    name="delete_tenant",
    executor_def=dg.in_process_executor,
    tags=NO_RETRIES,
    description="Delete a tenant: its namespace, and everything in it, on each of its clusters "
    "(only with a run grant from `DELETE /api/v1/tenants/{name}`).",
)
def delete_tenant_job():
    remove_tenant()
