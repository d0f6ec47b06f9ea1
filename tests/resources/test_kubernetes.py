"""The Kubernetes client against the stateful loopback API server fake."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kubernetes_server import FakeKubernetes, owner_reference
from timbel_dagster.resources.clusters_file import ClusterConfig
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.resources.kubernetes import KubernetesClient, KubernetesResource, parse_quantity

TOKEN = "k8s-token-abc"
TOKEN_ENV = "TIMBEL_TEST_SEOUL_DEV_TOKEN"
GIB = 1024**3


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes(token=TOKEN)
    server.start()
    yield server
    server.stop()


def _clusters_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "clusters.yaml"
    path.write_text(
        "clusters:\n"
        f"  - {{name: seoul-dev-01, group: dev, api_url: '{url}', token_env: {TOKEN_ENV}}}\n"
        "  - {name: seoul-prod-01, group: prod, context: prod-admin}\n"
    )
    return path


@pytest.fixture
def resource(fake: FakeKubernetes, tmp_path: Path) -> KubernetesResource:
    return KubernetesResource(clusters_file=str(_clusters_file(tmp_path, fake.url)))


def client_for(fake: FakeKubernetes, **options: Any) -> KubernetesClient:
    cluster = ClusterConfig("seoul-dev-01", "dev", None, fake.url, TOKEN_ENV, None)
    return KubernetesClient(cluster, timeout_seconds=5, sleep=lambda _seconds: None, **options)


def pod(name: str, namespace: str = "shop", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], "nodeName": "node-a"},
        "status": {"phase": "Running", **status},
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", 0.25),
        ("1", 1.0),
        ("3900m", 3.9),
        ("1Gi", 1073741824.0),
        ("1.5Gi", 1.5 * GIB),
        ("100Ki", 102400.0),
        ("500M", 500_000_000.0),
        ("2k", 2000.0),
        ("1e3", 1000.0),
        ("129e6", 129_000_000.0),
        ("0", 0.0),
        ("100n", 1e-7),
    ],
)
def test_parse_quantity(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text", ["8 cores", "", " 1", "1Gb", "1ki", "abc", "NaN", "1_000", "1.2.3"]
)
def test_parse_quantity_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_quantity(text)


def test_importing_the_module_does_not_import_kubernetes() -> None:
    code = "import sys, timbel_dagster.resources.kubernetes; print('kubernetes' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_version_and_nodes(fake: FakeKubernetes, resource: KubernetesResource) -> None:
    fake.put(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "a"}},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "3920m", "memory": "15564Mi"},
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "MemoryPressure", "status": "False"},
                ],
                "nodeInfo": {"kubeletVersion": "v1.29.4"},
            },
        }
    )
    with resource.client("seoul-dev-01") as client:
        assert client.version() == "v1.29.4"
        (node,) = client.nodes()
    assert node.name == "node-a" and node.labels == {"topology.kubernetes.io/zone": "a"}
    assert (node.capacity.cpu, node.capacity.memory) == (4.0, 16 * GIB)
    assert (node.allocatable.cpu, node.allocatable.memory) == (3.92, 15564 * 1024**2)
    assert node.conditions == {"Ready": True, "MemoryPressure": False}
    assert node.kubelet_version == "v1.29.4"


def test_lists_follow_continue_tokens(fake: FakeKubernetes) -> None:
    for number in range(1201):
        fake.put(pod(f"batch-{number:04d}", namespace=f"team-{number % 3}"))
    client = client_for(fake)
    pods = client.pods()
    assert len(pods) == 1201 and len({(p.namespace, p.name) for p in pods}) == 1201
    pages = [q for m, path, q in fake.requests if path == "/api/v1/pods"]
    assert len(pages) == 3 and all("limit=500" in q for q in pages)
    assert "continue=" not in pages[0] and "continue=" in pages[1]
    assert len(client.pods("team-1")) == 400
    assert fake.requests[-2][1] == "/api/v1/namespaces/team-1/pods"


def test_pods_owners_restarts_reasons_and_resources(fake: FakeKubernetes) -> None:
    fake.put_deployment("shop", "web", replicas=2, node="node-a")
    # A pod whose ReplicaSet is gone: its Deployment is the name without the hash suffix.
    orphan = pod("api-7c9d8b6f5d-x2x4z")
    orphan["metadata"]["labels"] = {"pod-template-hash": "7c9d8b6f5d"}
    orphan["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7c9d8b6f5d", "uid": "1"}
    ]
    fake.put(orphan)
    standalone = fake.put(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "solo", "namespace": "shop"},
        }
    )
    looping = pod(
        "solo-abcde",
        containerStatuses=[
            {
                "name": "app",
                "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
            },
            {"name": "sidecar", "restartCount": 1, "state": {"running": {}}},
        ],
    )
    looping["metadata"]["ownerReferences"] = [owner_reference(standalone)]
    looping["spec"]["containers"] = [
        {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "2Gi"}}},
        {"name": "sidecar", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
    ]  # fmt: skip
    fake.put(looping)

    pods = {p.name: p for p in client_for(fake).pods("shop")}
    web = [p for p in pods.values() if p.name.startswith("web-")]
    assert len(web) == 2
    assert {(p.owner_kind, p.owner_name, p.node, p.phase) for p in web} == {
        ("Deployment", "web", "node-a", "Running")
    }
    assert (web[0].requests.cpu, web[0].limits.memory) == (0.25, 512 * 1024**2)
    orphaned = pods["api-7c9d8b6f5d-x2x4z"]
    assert (orphaned.owner_kind, orphaned.owner_name) == ("Deployment", "api")
    crashing = pods["solo-abcde"]
    assert (crashing.owner_kind, crashing.owner_name) == ("ReplicaSet", "solo")
    assert crashing.restarts == 8
    assert crashing.waiting_reasons == ("CrashLoopBackOff",)
    assert crashing.terminated_reasons == ("OOMKilled",)
    assert crashing.requests.cpu == pytest.approx(0.6)
    assert crashing.requests.memory == GIB + 128 * 1024**2
    assert (crashing.limits.cpu, crashing.limits.memory) == (2.0, 2 * GIB)


def test_pods_fall_back_to_the_hash_suffix_when_replicasets_are_forbidden(
    fake: FakeKubernetes,
) -> None:
    fake.put_deployment("shop", "web", replicas=1)
    fake.fail_next(403, path_contains="replicasets", message="replicasets.apps is forbidden")
    (only,) = client_for(fake).pods("shop")
    assert (only.owner_kind, only.owner_name) == ("Deployment", "web")


def test_a_malformed_quantity_names_the_pod(fake: FakeKubernetes) -> None:
    bad = pod("greedy")
    bad["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "8 cores"}}
    fake.put(bad)
    with pytest.raises(SourceDataError, match=r"cluster seoul-dev-01 pod shop/greedy.*'8 cores'"):
        client_for(fake).pods()


def test_deployments_follow_the_rollout(fake: FakeKubernetes) -> None:
    from kubernetes import client as k8s

    client = client_for(fake)
    apps = k8s.AppsV1Api(client.api_client)
    labels = {"app": "cart"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cart", "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "cart", "image": "cart:1.0"}]},
            },
        },
    }
    apps.create_namespaced_deployment("shop", body)
    (cart,) = client.deployments("shop")
    assert (cart.generation, cart.observed_generation, cart.rolled_out) == (1, 0, False)
    fake.complete_rollout("shop", "cart")
    (cart,) = client.deployments()
    assert (cart.replicas, cart.ready, cart.available, cart.updated) == (3, 3, 3, 3)
    assert cart.rolled_out and cart.condition("Available").status == "True"
    assert cart.images == ("cart:1.0",)

    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "cart", "image": "cart:1.1"}]}}}
    }
    apps.patch_namespaced_deployment("cart", "shop", patch)
    (cart,) = client.deployments("shop")
    assert (cart.generation, cart.observed_generation, cart.rolled_out) == (2, 1, False)
    fake.fail_rollout("shop", "cart")
    (cart,) = client.deployments("shop")
    assert cart.rollout_failed and cart.condition("Progressing").status == "False"
    assert cart.images == ("cart:1.1",)

    fake.auto_rollout = True
    apps.patch_namespaced_deployment("cart", "shop", {"spec": {"replicas": 4}})
    (cart,) = client.deployments("shop")
    assert cart.generation == cart.observed_generation == 3 and cart.rolled_out


def test_events_with_since_and_pagination(fake: FakeKubernetes) -> None:
    base = dt.datetime(2025, 11, 3, 9, 0, tzinfo=dt.UTC)
    for minute, extra in [
        (0, {"lastTimestamp": "2025-11-03T09:00:00Z", "count": 4}),
        (10, {"lastTimestamp": "2025-11-03T09:10:00Z"}),
        (20, {"eventTime": "2025-11-03T09:20:00.123456Z", "series": {"count": 9}}),
    ]:
        fake.put(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"web.{minute}", "namespace": "shop"},
                "involvedObject": {"kind": "Pod", "name": f"web-{minute}", "namespace": "shop"},
                "type": "Warning",
                "reason": "BackOff",
                "message": "Back-off restarting failed container",
                **extra,
            }
        )
    client = client_for(fake, page_size=2)
    events = client.events("shop")
    assert [(e.name, e.count) for e in events] == [("web-0", 4), ("web-10", 1), ("web-20", 9)]
    assert events[2].last_timestamp == base + dt.timedelta(minutes=20, microseconds=123456)
    assert {(e.kind, e.type, e.reason) for e in events} == {("Pod", "Warning", "BackOff")}
    recent = client.events(since=base + dt.timedelta(minutes=5))
    assert [e.name for e in recent] == ["web-10", "web-20"]
    assert sum(path == "/api/v1/events" for _m, path, _q in fake.requests) == 2


def test_a_wrong_token_is_an_auth_error(
    fake: FakeKubernetes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    with pytest.raises(SourceAuthError, match=f"cluster seoul-dev-01 nodes: .*401.*{TOKEN_ENV}"):
        client_for(fake).nodes()


def test_server_errors_are_retried_then_transient(fake: FakeKubernetes) -> None:
    fake.fail_next(500)
    assert client_for(fake).version() == "v1.29.4"  # one retry was enough
    client = client_for(fake, retries=2)
    fake.fail_next(500, count=3, message="etcdserver: request timed out")
    with pytest.raises(TransientSourceError, match="deployments: server error 500: etcdserver"):
        client.deployments()
    assert client.requests_made == 3
    fake.fail_next(429, count=3, retry_after=1)
    with pytest.raises(TransientSourceError, match="server error 429"):
        client.pods()
    fake.fail_next(count=3, drop=True)
    with pytest.raises(TransientSourceError, match=re.escape(f"cannot reach {fake.url}")):
        client.nodes()


def test_missing_objects_and_refusals_are_typed(fake: FakeKubernetes) -> None:
    from kubernetes import client as k8s

    client = client_for(fake)
    apps = k8s.AppsV1Api(client.api_client)
    with pytest.raises(SourceNotFoundError, match=r'deployment shop/nope: .*"nope" not found'):
        client.call("deployment shop/nope", apps.read_namespaced_deployment, "nope", "shop")


def test_an_unreachable_server_names_the_url() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    cluster = ClusterConfig("seoul-dev-01", "dev", None, url, TOKEN_ENV, None)
    client = KubernetesClient(cluster, timeout_seconds=2, sleep=lambda _s: None)
    with pytest.raises(TransientSourceError, match=re.escape(f"cannot reach {url}")):
        client.version()
    assert client.requests_made == 3


def test_a_kubeconfig_context(fake: FakeKubernetes, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        f"clusters:\n- name: prod\n  cluster: {{server: '{fake.url}'}}\n"
        f"users:\n- name: admin\n  user: {{token: {TOKEN}}}\n"
        "contexts:\n- name: prod-admin\n  context: {cluster: prod, user: admin}\n"
        "- name: other\n  context: {cluster: prod, user: admin}\n"
    )
    path = _clusters_file(tmp_path, fake.url)
    resource = KubernetesResource(clusters_file=str(path), kubeconfig=str(kubeconfig))
    client = resource.client("seoul-prod-01")
    assert client.version() == "v1.29.4"
    assert client.target == f"{fake.url} (kubeconfig context prod-admin)"
    missing = KubernetesResource(clusters_file=str(path), kubeconfig=str(tmp_path / "none"))
    with pytest.raises(SourceNotConfiguredError, match="seoul-prod-01: kubeconfig context"):
        missing.client("seoul-prod-01")


def test_no_clusters_file_says_which_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from timbel_dagster import settings

    monkeypatch.setattr(
        settings, "get_settings", lambda: settings.load_settings(timbel_clusters_file=None)
    )
    with pytest.raises(SourceNotConfiguredError, match="set TIMBEL_CLUSTERS_FILE"):
        KubernetesResource().clusters()


def test_an_unknown_cluster_lists_the_known_ones(resource: KubernetesResource) -> None:
    assert [c.name for c in resource.clusters()] == ["seoul-dev-01", "seoul-prod-01"]
    with pytest.raises(SourceNotFoundError, match="known: seoul-dev-01, seoul-prod-01"):
        resource.client("busan-prod-01")


@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_missing_token_names_the_variable_and_cluster(
    resource: KubernetesResource, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(TOKEN_ENV)
    else:
        monkeypatch.setenv(TOKEN_ENV, value)
    with pytest.raises(SourceNotConfiguredError, match=f"cluster seoul-dev-01: .*{TOKEN_ENV}"):
        resource.client("seoul-dev-01")


# -- the fake itself enforces the API's rules ---------------------------------------------------
def test_the_fake_answers_like_the_api_server(fake: FakeKubernetes) -> None:
    from kubernetes import client as k8s

    api = client_for(fake).api_client
    core = k8s.CoreV1Api(api)
    config_map = {"metadata": {"name": "settings", "labels": {"tier": "web", "env": "dev"}}}
    created = core.create_namespaced_config_map("shop", config_map)
    assert created.metadata.uid and created.metadata.resource_version
    apply = {"_content_type": "application/apply-patch+yaml"}  # without a fieldManager
    for call, args, status, reason in [
        (core.create_namespaced_config_map, ("shop", config_map), 409, "AlreadyExists"),
        (
            core.create_namespaced_config_map,
            ("shop", {"metadata": {"name": "A_b"}}),
            422,
            "Invalid",
        ),
        (core.read_namespaced_config_map, ("missing", "shop"), 404, "NotFound"),
        (core.patch_namespaced_config_map, ("settings", "shop", {"data": {}}), 422, "Invalid"),
    ]:
        with pytest.raises(k8s.ApiException) as refused:
            call(*args, **(apply if call == core.patch_namespaced_config_map else {}))
        answer = json.loads(refused.value.body)
        assert (refused.value.status, answer["kind"], answer["reason"]) == (
            status,
            "Status",
            reason,
        )
    stale = core.read_namespaced_config_map("settings", "shop")
    core.patch_namespaced_config_map("settings", "shop", {"data": {"a": "1"}})
    with pytest.raises(k8s.ApiException, match="the object has been modified"):
        core.replace_namespaced_config_map("settings", "shop", stale)
    core.create_namespaced_config_map(
        "shop", {"metadata": {"name": "other", "labels": {"tier": "db"}}}
    )
    listed = core.list_namespaced_config_map("shop", label_selector="tier=web,env")
    assert [c.metadata.name for c in listed.items] == ["settings"]
    listed = core.list_config_map_for_all_namespaces(field_selector="metadata.name=other")
    assert [c.metadata.name for c in listed.items] == ["other"]
    core.create_namespace({"metadata": {"name": "shop"}})
    core.delete_namespace("shop")
    assert core.list_config_map_for_all_namespaces().items == []
