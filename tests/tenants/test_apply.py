"""Server-side apply of a tenant's manifests against the stateful fake API server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.fakes.kubernetes_server import FakeKubernetes
from tests.tenants.conftest import TOKEN_ENV
from timbel_dagster.resources.clusters_file import ClusterConfig
from timbel_dagster.resources.errors import SourceError, TransientSourceError
from timbel_dagster.resources.kubernetes import KubernetesClient
from timbel_dagster.tenants.apply import apply_manifests, delete_namespace, object_path
from timbel_dagster.tenants.manifests import build_manifests, tenant_spec

SELECTOR = "timbel.io/tenant=shop,app.kubernetes.io/managed-by=timbel"


@pytest.fixture
def client(dev: FakeKubernetes) -> Iterator[KubernetesClient]:
    cluster = ClusterConfig("seoul-dev-01", "dev", None, dev.url, TOKEN_ENV, None)
    with KubernetesClient(cluster, timeout_seconds=5, sleep=lambda _s: None) as found:
        yield found


def manifests(**changes: object) -> list[dict]:
    settings: dict = {"cpu": "8", "memory": "16Gi", "users": ["minji.kim", "jaehyun.park"]}
    settings |= changes
    users = settings.pop("users")
    return build_manifests(tenant_spec("shop", settings.pop("cpu"), settings.pop("memory"),
                                       users, **settings))  # fmt: skip


def actions(outcomes: list) -> dict[str, str]:
    return {f"{o.kind} {o.name}": o.action for o in outcomes}


def writes(fake: FakeKubernetes, since: int) -> list[tuple[str, str, str]]:
    """Requests after `since` that could change something (dry runs excluded)."""
    return [r for r in fake.requests[since:] if r[0] != "GET" and "dryRun=All" not in r[2]]


def test_first_apply_creates_everything_and_the_second_changes_nothing(
    dev: FakeKubernetes, client: KubernetesClient
) -> None:
    lines: list[str] = []
    first = apply_manifests(client, manifests(), prune_selector=SELECTOR, log=lines.append)
    assert [o.action for o in first] == ["created"] * 6
    assert lines[0] == "seoul-dev-01: Namespace shop created"
    assert "seoul-dev-01: RoleBinding shop/timbel-edit-minji.kim created" in lines
    namespace = dev.get("Namespace", "shop")
    assert namespace["metadata"]["labels"]["timbel.io/tenant"] == "shop"
    quota = dev.get("ResourceQuota", "tenant-quota", "shop")
    assert quota["spec"]["hard"]["requests.memory"] == "16Gi"
    assert dev.get("LimitRange", "tenant-limits", "shop") is not None
    assert dev.get("NetworkPolicy", "default-deny", "shop")["spec"]["podSelector"] == {}
    assert dev.get("RoleBinding", "timbel-edit-jaehyun.park", "shop")["subjects"][0]["name"] == (
        "jaehyun.park"
    )
    # Every write was a server-side apply by the field manager `timbel`.
    patches = [r for r in dev.requests if r[0] == "PATCH"]
    assert len(patches) == 6 and all("fieldManager=timbel" in r[2] for r in patches)
    versions = {r["metadata"]["name"]: r["metadata"]["resourceVersion"] for r in [namespace, quota]}

    mark = len(dev.requests)
    second = apply_manifests(client, manifests(), prune_selector=SELECTOR)
    assert [o.action for o in second] == ["unchanged"] * 6
    assert writes(dev, mark) == []
    assert dev.get("Namespace", "shop")["metadata"]["resourceVersion"] == versions["shop"]
    assert (
        dev.get("ResourceQuota", "tenant-quota", "shop")["metadata"]["resourceVersion"]
        == (versions["tenant-quota"])
    )


def test_a_changed_quota_updates_only_the_quota(
    dev: FakeKubernetes, client: KubernetesClient
) -> None:
    apply_manifests(client, manifests(), prune_selector=SELECTOR)
    mark = len(dev.requests)
    outcomes = apply_manifests(client, manifests(cpu="12", memory="24Gi"), prune_selector=SELECTOR)
    assert actions(outcomes) == {
        "Namespace shop": "unchanged",
        "ResourceQuota tenant-quota": "configured",
        "LimitRange tenant-limits": "unchanged",
        "NetworkPolicy default-deny": "unchanged",
        "RoleBinding timbel-edit-jaehyun.park": "unchanged",
        "RoleBinding timbel-edit-minji.kim": "unchanged",
    }
    assert [r[1] for r in writes(dev, mark)] == [
        "/api/v1/namespaces/shop/resourcequotas/tenant-quota"
    ]
    hard = dev.get("ResourceQuota", "tenant-quota", "shop")["spec"]["hard"]
    assert (hard["limits.cpu"], hard["limits.memory"]) == ("12", "24Gi")


def test_removed_users_and_a_changed_role_prune_their_bindings(
    dev: FakeKubernetes, client: KubernetesClient
) -> None:
    apply_manifests(client, manifests(), prune_selector=SELECTOR)
    # A binding someone made by hand, without Timbel's labels, is left alone.
    dev.put({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "hand-made", "namespace": "shop"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "view"}, "subjects": []})  # fmt: skip
    outcomes = apply_manifests(
        client, manifests(users=["minji.kim"], role="admin"), prune_selector=SELECTOR
    )
    assert actions(outcomes) == {
        "Namespace shop": "unchanged",
        "ResourceQuota tenant-quota": "unchanged",
        "LimitRange tenant-limits": "unchanged",
        "NetworkPolicy default-deny": "unchanged",
        "RoleBinding timbel-admin-minji.kim": "created",
        "RoleBinding timbel-edit-jaehyun.park": "pruned",
        "RoleBinding timbel-edit-minji.kim": "pruned",
    }
    assert dev.get("RoleBinding", "timbel-edit-minji.kim", "shop") is None
    assert dev.get("RoleBinding", "hand-made", "shop") is not None


def test_a_dry_run_reports_without_writing(dev: FakeKubernetes, client: KubernetesClient) -> None:
    fresh = apply_manifests(client, manifests(), dry_run=True, prune_selector=SELECTOR)
    assert [o.action for o in fresh] == ["created"] * 6
    assert dev.get("Namespace", "shop") is None and writes(dev, 0) == []
    apply_manifests(client, manifests(), prune_selector=SELECTOR)
    mark = len(dev.requests)
    changed = apply_manifests(client, manifests(pods=20, users=["minji.kim"]), dry_run=True,
                              prune_selector=SELECTOR)  # fmt: skip
    assert actions(changed)["ResourceQuota tenant-quota"] == "configured"
    assert actions(changed)["RoleBinding timbel-edit-jaehyun.park"] == "pruned"
    assert writes(dev, mark) == []
    assert dev.get("ResourceQuota", "tenant-quota", "shop")["spec"]["hard"]["pods"] == "100"


def test_transient_failures_are_retried(dev: FakeKubernetes, client: KubernetesClient) -> None:
    dev.fail_next(503, count=2, path_contains="/resourcequotas/")
    outcomes = apply_manifests(client, manifests())
    assert [o.action for o in outcomes] == ["created"] * 6


def test_a_refused_apply_is_a_typed_error_naming_the_object(
    dev: FakeKubernetes, client: KubernetesClient
) -> None:
    dev.fail_next(403, message="forbidden: cannot patch limitranges", path_contains="limitranges")
    with pytest.raises(SourceError, match=re.escape(
        "kubernetes cluster seoul-dev-01 LimitRange shop/tenant-limits: access refused (403"
    )):  # fmt: skip
        apply_manifests(client, manifests())
    dev.fail_next(503, count=5, path_contains="networkpolicies")
    with pytest.raises(TransientSourceError, match="NetworkPolicy shop/default-deny"):
        apply_manifests(client, manifests())


def test_delete_namespace(dev: FakeKubernetes, client: KubernetesClient) -> None:
    apply_manifests(client, manifests())
    assert delete_namespace(client, "shop") == "deleted"
    assert dev.get("Namespace", "shop") is None
    assert dev.get("ResourceQuota", "tenant-quota", "shop") is None
    assert delete_namespace(client, "shop") == "absent"


def test_object_paths() -> None:
    paths = [object_path(m) for m in manifests()]
    assert paths[:4] == [
        "/api/v1/namespaces/shop",
        "/api/v1/namespaces/shop/resourcequotas/tenant-quota",
        "/api/v1/namespaces/shop/limitranges/tenant-limits",
        "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/default-deny",
    ]
    with pytest.raises(ValueError, match="Deployment apps/v1 is not a kind Timbel applies"):
        object_path({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})
