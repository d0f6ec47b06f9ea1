"""Idempotent apply of manifests to one cluster by server-side apply, and namespace deletion.

Each object is read first. A missing one is applied and reported `created`. An existing one
is applied once with `dryRun=All`; when the server's answer equals the live object nothing
is written and it is `unchanged`, else it is applied for real and `configured` (the words
`kubectl apply` uses). Applies use field manager `timbel` with `force`, because Timbel owns
these objects: a hand edit of a field Timbel sets is overwritten, as on every apply.
RoleBindings labelled for the tenant that are no longer wanted (a user removed, the role
changed: a binding's roleRef cannot be changed in place) are deleted and reported `pruned`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from timbel_dagster.resources.errors import SourceNotFoundError
from timbel_dagster.resources.kubernetes import KubernetesClient
from timbel_dagster.tenants.manifests import describe

FIELD_MANAGER = "timbel"
APPLY_PATCH = "application/apply-patch+yaml"
# (apiVersion, kind) -> (path prefix, plural, namespaced)
RESOURCES = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ResourceQuota"): ("/api/v1", "resourcequotas", True),
    ("v1", "LimitRange"): ("/api/v1", "limitranges", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): (
        "/apis/networking.k8s.io/v1",
        "networkpolicies",
        True,
    ),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1",
        "rolebindings",
        True,
    ),
    # Autoscaling of workloads (deploy/autoscaling.py) is applied the same way.
    ("autoscaling/v2", "HorizontalPodAutoscaler"): (
        "/apis/autoscaling/v2",
        "horizontalpodautoscalers",
        True,
    ),
    ("autoscaling.k8s.io/v1", "VerticalPodAutoscaler"): (
        "/apis/autoscaling.k8s.io/v1",
        "verticalpodautoscalers",
        True,
    ),
}
PRUNED_KINDS = (("rbac.authorization.k8s.io/v1", "RoleBinding"),)
# Fields the server changes on every write, whether or not anything else changed.
VOLATILE = ("resourceVersion", "managedFields")


@dataclass(frozen=True)
class Outcome:
    kind: str
    namespace: str | None
    name: str
    action: str  # created | configured | unchanged | pruned (with dry_run: what would be)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """`/api/v1/namespaces/shop/resourcequotas`, `/api/v1/namespaces`."""
    if (api_version, kind) not in RESOURCES:
        raise ValueError(f"{kind} {api_version} is not a kind Timbel applies")
    prefix, plural, namespaced = RESOURCES[(api_version, kind)]
    if namespaced and not namespace:
        raise ValueError(f"{kind} needs a namespace")
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"


def object_path(manifest: dict[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    base = collection_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
    return f"{base}/{meta['name']}"


def request(
    client: KubernetesClient,
    what: str,
    method: str,
    path: str,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """One REST call through the client's retries and typed errors."""
    headers = {"Accept": "application/json", "Content-Type": content_type}
    return client.call(
        what,
        client.api_client.call_api,
        path,
        method,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )


def read(client: KubernetesClient, what: str, path: str) -> dict[str, Any] | None:
    """The object at `path`, or None when it does not exist."""
    try:
        return request(client, what, "GET", path)
    except SourceNotFoundError:
        return None


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    # `status` is the controllers' (a quota's usage moves on its own), never ours to apply.
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in VOLATILE}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _apply(client: KubernetesClient, manifest: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    what = f"apply {describe(manifest)}"
    return request(client, what, "PATCH", object_path(manifest), query, manifest, APPLY_PATCH)


def apply_one(client: KubernetesClient, manifest: dict[str, Any], dry_run: bool = False) -> str:
    """Apply one manifest; `created`, `configured` or `unchanged` (what would be, dry)."""
    live = read(client, describe(manifest), object_path(manifest))
    if live is None:
        if not dry_run:
            _apply(client, manifest, dry_run=False)
        return "created"
    if _comparable(_apply(client, manifest, dry_run=True)) == _comparable(live):
        return "unchanged"
    if not dry_run:
        _apply(client, manifest, dry_run=False)
    return "configured"


def _prune(
    client: KubernetesClient, manifests: list[dict[str, Any]], selector: str, dry_run: bool
) -> list[Outcome]:
    wanted = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in manifests}
    namespaces = sorted(
        {m["metadata"]["namespace"] for m in manifests if "namespace" in m.get("metadata", {})}
    )
    pruned = []
    for api_version, kind in PRUNED_KINDS:
        for namespace in namespaces:
            path = collection_path(api_version, kind, namespace)
            found = request(
                client, f"{kind} in {namespace}", "GET", path, [("labelSelector", selector)]
            )
            for item in found.get("items") or []:
                name = item["metadata"]["name"]
                if (api_version, kind, name) in wanted:
                    continue
                if not dry_run:
                    try:
                        request(
                            client, f"delete {kind} {namespace}/{name}", "DELETE", f"{path}/{name}"
                        )
                    except SourceNotFoundError:
                        continue  # deleted meanwhile: the outcome is the same
                pruned.append(Outcome(kind, namespace, name, "pruned"))
    return pruned


def apply_manifests(
    client: KubernetesClient,
    manifests: list[dict[str, Any]],
    *,
    dry_run: bool = False,
    prune_selector: str | None = None,
    log: Callable[[str], None] = lambda _line: None,
    outcomes: list[Outcome] | None = None,
) -> list[Outcome]:
    """Apply manifests in order (a Namespace before what goes in it), then prune.

    Args:
        client: the cluster.
        manifests: objects of the kinds in `RESOURCES`.
        dry_run: only find out what would happen; nothing is written.
        prune_selector: a label selector; RoleBindings in the manifests' namespaces that
            match it and are not among the manifests are deleted.
        log: called with one line per object.
        outcomes: a list to append each outcome to as it happens (and return), so that a
            caller still knows what was applied when a later call fails.

    Raises:
        SourceError: a call failed; the objects before it stay applied (re-running is safe).
    """
    outcomes = [] if outcomes is None else outcomes
    for manifest in manifests:
        action = apply_one(client, manifest, dry_run)
        meta = manifest["metadata"]
        outcomes.append(Outcome(manifest["kind"], meta.get("namespace"), meta["name"], action))
        log(f"{client.cluster.name}: {describe(manifest)} {action}{' (dry run)' * dry_run}")
    if prune_selector:
        for outcome in _prune(client, manifests, prune_selector, dry_run):
            outcomes.append(outcome)
            log(
                f"{client.cluster.name}: {outcome.kind} {outcome.namespace}/{outcome.name} "
                f"pruned{' (dry run)' * dry_run}"
            )
    return outcomes


def delete_namespace(client: KubernetesClient, name: str) -> str:
    """Delete a namespace (the cluster then deletes everything in it): `deleted` or
    `absent` when it was already gone."""
    path = collection_path("v1", "Namespace", None)
    try:
        request(client, f"delete Namespace {name}", "DELETE", f"{path}/{name}")
    except SourceNotFoundError:
        return "absent"
    return "deleted"
