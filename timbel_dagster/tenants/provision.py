"""Provisioning and deleting tenants: check everything first, then change the clusters, then
record the row with its audit event. The `provision_tenant` job and `timbel tenant` both
call these functions.

Nothing is applied until every check passed: the clusters and groups are known, the
quantities and names are valid, the users (and the acting user) exist, every cluster
answers, and every manifest is valid for each cluster's Kubernetes version. A refused
attempt changes nothing and is audited as `tenant.create.refused` (or
`tenant.delete.refused`) with the error. A failure half-way through applying is audited as
`tenant.create.failed` with what was applied; applying is idempotent, so running the same
command again finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from timbel_dagster.resources.clusters_file import ClusterConfig
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.tenants import store
from timbel_dagster.tenants.apply import Outcome, apply_manifests, delete_namespace, read
from timbel_dagster.tenants.manifests import (
    DEFAULT_INGRESS_NAMESPACE,
    DEFAULT_PODS,
    DEFAULT_ROLE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    TENANT_LABEL,
    build_manifests,
    tenant_spec,
)
from timbel_dagster.tenants.validate import validate_manifests
from timbel_dagster.warehouse.schema.models import ENVIRONMENT_GROUPS

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.resources.kubernetes import KubernetesResource
    from timbel_dagster.tenants.manifests import TenantSpec

Log = Callable[[str], None]
# What a person can fix; anything else is a bug and is not caught.
REFUSALS = (ValueError, LookupError, SourceError, SourceNotConfiguredError)


class TenantRefusedError(ValueError):
    """The tenant's namespace on a cluster is not one Timbel manages for this tenant."""


@dataclass(frozen=True)
class TenantRequest:
    """A tenant as asked for, unchecked (from the CLI or the job's config)."""

    name: str
    cpu: str
    memory: str
    users: tuple[str, ...]
    clusters: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    pods: int = DEFAULT_PODS
    role: str = DEFAULT_ROLE
    ingress_namespace: str = DEFAULT_INGRESS_NAMESPACE

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ClusterPlan:
    cluster: str
    kubernetes_version: str  # what the API server reports (else the clusters file)
    schema_version: str  # the kubernetes-validate schema the manifests passed
    manifests: list[dict[str, Any]] = field(repr=False)


def select_clusters(
    known: list[ClusterConfig], names: tuple[str, ...], groups: tuple[str, ...]
) -> list[ClusterConfig]:
    """The clusters named plus every cluster of the groups named, in clusters-file order.

    Raises:
        LookupError: an unknown cluster or group, a group without clusters, or neither
            clusters nor groups given.
    """

    if not names and not groups:
        raise LookupError("name the clusters: give --cluster NAME or --group dev|staging|prod")
    by_name = {c.name: c for c in known}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise LookupError(
            f"unknown cluster(s) {', '.join(unknown)}; the clusters file has "
            f"{', '.join(sorted(by_name)) or 'none'}"
        )
    for group in groups:
        if group not in ENVIRONMENT_GROUPS:
            raise LookupError(
                f"unknown group {group!r}; groups are {', '.join(ENVIRONMENT_GROUPS)}"
            )
        if not any(c.group == group for c in known):
            raise LookupError(f"no cluster of group {group!r} in the clusters file")
    return [c for c in known if c.name in names or c.group in groups]


def _plan_cluster(
    kubernetes: KubernetesResource, config: ClusterConfig, spec: TenantSpec, log: Log
) -> ClusterPlan:
    with kubernetes.client(config.name) as client:
        version = client.version() or config.kubernetes_version
    if not version:
        raise LookupError(
            f"cluster {config.name}: the API server reports no version and the clusters file "
            "gives no kubernetes_version to validate the manifests against"
        )
    manifests = build_manifests(spec)
    schema = validate_manifests(manifests, version)
    log(f"{config.name}: Kubernetes {version}, {len(manifests)} manifests valid (schema {schema})")
    return ClusterPlan(config.name, version, schema, manifests)


def plan_tenant(
    engine: Engine, kubernetes: KubernetesResource, request: TenantRequest, actor: str, log: Log
) -> tuple[TenantSpec, list[ClusterPlan]]:
    """Every check, no change. Raises the first problem found (see `REFUSALS`)."""
    spec = tenant_spec(
        request.name,
        request.cpu,
        request.memory,
        request.users,
        pods=request.pods,
        role=request.role,
        ingress_namespace=request.ingress_namespace,
    )
    clusters = select_clusters(kubernetes.clusters(), request.clusters, request.groups)
    with engine.connect() as connection:
        store.check_users(connection, [actor], acting=True)
        store.check_users(connection, spec.users)
    return spec, [_plan_cluster(kubernetes, c, spec, log) for c in clusters]


def _summary(outcomes: dict[str, list[Outcome]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for cluster, found in outcomes.items():
        counts[cluster] = {}
        for outcome in found:
            counts[cluster][outcome.action] = counts[cluster].get(outcome.action, 0) + 1
    return counts


def provision_tenant(
    engine: Engine,
    kubernetes: KubernetesResource,
    request: TenantRequest,
    actor: str,
    *,
    dry_run: bool = False,
    log: Log = lambda _line: None,
) -> dict[str, Any]:
    """Create or update a tenant on its clusters and record it.

    Returns:
        `tenant`, `action` (`tenant.create`, `tenant.update`, or None for a dry run),
        `dry_run`, the checked `cpu`, `memory`, `users`, and per cluster its versions and
        each object's outcome (`created`, `configured`, `unchanged`, `pruned`).

    Raises:
        ValueError, LookupError, SourceError, SourceNotConfiguredError: refused before any
            change (audited as `tenant.create.refused`), or a cluster failed while applying
            (audited as `tenant.create.failed`).
    """
    asked = {**request.as_dict(), "dry_run": dry_run}
    try:
        spec, plans = plan_tenant(engine, kubernetes, request, actor, log)
    except REFUSALS as error:
        store.record_attempt(engine, "tenant.create.refused", request.name, actor, error, asked)
        raise
    selector = f"{TENANT_LABEL}={spec.name},{MANAGED_BY_LABEL}={MANAGED_BY}"
    outcomes: dict[str, list[Outcome]] = {}
    try:
        for plan in plans:
            with kubernetes.client(plan.cluster) as client:
                apply_manifests(
                    client,
                    plan.manifests,
                    dry_run=dry_run,
                    prune_selector=selector,
                    log=log,
                    outcomes=outcomes.setdefault(plan.cluster, []),
                )
    except REFUSALS as error:
        if not dry_run:
            done = {"applied": _summary(outcomes), "objects": _objects(outcomes)}
            store.record_attempt(
                engine, "tenant.create.failed", spec.name, actor, error, {**asked, **done}
            )
        raise
    result: dict[str, Any] = {
        "tenant": spec.name,
        "action": None,
        "dry_run": dry_run,
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": spec.pods,
        "role": spec.role,
        "users": list(spec.users),
        "clusters": [
            {
                "cluster": plan.cluster,
                "kubernetes_version": plan.kubernetes_version,
                "schema_version": plan.schema_version,
                "objects": [o.as_dict() for o in outcomes[plan.cluster]],
            }
            for plan in plans
        ],
    }
    if dry_run:
        return result
    details = {**asked, "cpu": spec.cpu, "memory": spec.memory, "users": list(spec.users),
               "applied": _summary(outcomes), "changed": _objects(outcomes)}  # fmt: skip
    _, result["action"] = store.record_provisioned(engine, spec, list(outcomes), actor, details)
    log(f"tenant {spec.name}: {result['action']} recorded")
    return result


def _objects(outcomes: dict[str, list[Outcome]]) -> list[str]:
    """Every object that changed (or would), as `cluster: Kind ns/name action`."""
    return [
        f"{cluster}: {o.kind} {'/'.join(filter(None, [o.namespace, o.name]))} {o.action}"
        for cluster, found in outcomes.items()
        for o in found
        if o.action != "unchanged"
    ]


def _check_namespace(kubernetes: KubernetesResource, cluster: str, name: str) -> bool:
    """True when the namespace exists and is this tenant's; refuses someone else's."""
    with kubernetes.client(cluster) as client:
        namespace = read(client, f"Namespace {name}", f"/api/v1/namespaces/{name}")
    if namespace is None:
        return False
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    if labels.get(TENANT_LABEL) != name or labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        raise TenantRefusedError(
            f"cluster {cluster}: namespace {name} is not labelled {TENANT_LABEL}={name} and "
            f"{MANAGED_BY_LABEL}={MANAGED_BY}; Timbel does not delete namespaces it did not make"
        )
    return True


def delete_tenant(
    engine: Engine,
    kubernetes: KubernetesResource,
    name: str,
    actor: str,
    *,
    log: Log = lambda _line: None,
) -> dict[str, Any]:
    """Delete the tenant's namespace on each of its clusters and mark its row deleted.

    The caller asks for confirmation first. Every cluster is checked before any namespace
    is deleted: refusals are audited as `tenant.delete.refused`, a failure while deleting
    as `tenant.delete.failed`.
    """
    try:
        with engine.connect() as connection:
            store.check_users(connection, [actor], acting=True)
            row = store.get_tenant(connection, name)
        if row is None or row.status != "provisioned":
            raise store.TenantNotFoundError(f"no provisioned tenant {name!r}")
        present = {c: _check_namespace(kubernetes, c, name) for c in row.clusters}
    except REFUSALS as error:
        store.record_attempt(engine, "tenant.delete.refused", name, actor, error, {})
        raise
    results: dict[str, str] = {}
    try:
        for cluster, exists in present.items():
            if exists:
                with kubernetes.client(cluster) as client:
                    results[cluster] = delete_namespace(client, name)
            else:
                results[cluster] = "absent"
            log(f"{cluster}: Namespace {name} {results[cluster]}")
    except REFUSALS as error:
        store.record_attempt(
            engine, "tenant.delete.failed", name, actor, error, {"namespaces": results}
        )
        raise
    store.record_deleted(engine, name, actor, {"namespaces": results})
    log(f"tenant {name}: tenant.delete recorded")
    return {"tenant": name, "action": "tenant.delete", "namespaces": results}
