"""`timbel clusters check` against the stateful loopback Kubernetes API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.kubernetes_server import FakeKubernetes
from timbel_dagster.cluster_check import check_clusters
from timbel_dagster.resources.kubernetes import KubernetesResource

TOKEN, TOKEN_ENV = "t0ken", "DEV_CLUSTER_TOKEN"
SINCE = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server = FakeKubernetes(token=TOKEN)
    server.start()
    yield server
    server.stop()


def _resource(tmp_path: Path, url: str) -> KubernetesResource:
    path = tmp_path / "clusters.yaml"
    path.write_text(
        "clusters:\n"
        f"  - {{name: dev, group: dev, api_url: '{url}', token_env: {TOKEN_ENV}}}\n"
        "  - {name: gone, group: prod, api_url: 'http://127.0.0.1:9', token_env: "
        f"{TOKEN_ENV}}}\n"
    )
    return KubernetesResource(clusters_file=str(path), timeout_seconds=2)


def _node(name: str, ready: bool) -> dict:
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False"},
        {"type": "MemoryPressure", "status": "False"},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"capacity": {"cpu": "4", "memory": "16Gi"}, "conditions": conditions},
    }


def test_a_healthy_and_a_broken_cluster(fake: FakeKubernetes, tmp_path: Path) -> None:
    fake.put(_node("node-a", ready=True))
    fake.put_deployment("shop", "web", replicas=2, node="node-a")
    dev = check_clusters(_resource(tmp_path, fake.url), "dev", SINCE)
    assert dev[0]["healthy"] and dev[0]["nodes"] == 1 and dev[0]["pods"] == 2
    assert dev[0]["version"].startswith("v1.")
    fake.put(_node("node-b", ready=False))
    fake.put_deployment("shop", "api", replicas=1)
    fake.fail_rollout("shop", "api")
    fake.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "etl-0", "namespace": "data"},
            "spec": {"containers": [{"name": "etl", "image": "etl:1"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "etl",
                        "restartCount": 7,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    }
                ],
            },
        }
    )
    reports = {r["cluster"]: r for r in check_clusters(_resource(tmp_path, fake.url), None, SINCE)}
    dev = reports["dev"]
    assert not dev["healthy"]
    assert dev["nodes_not_ready"] == ["node-b"]
    assert dev["pods_crash_looping"] == ["data/etl-0"]
    assert dev["rollouts_stuck"] == ["shop/api"]
    assert "cannot reach" in reports["gone"]["error"] and not reports["gone"]["healthy"]


def test_an_unknown_cluster_is_named(fake: FakeKubernetes, tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no cluster 'nope' in the clusters file; known: dev"):
        check_clusters(_resource(tmp_path, fake.url), "nope", SINCE)


def test_the_command_prints_one_headed_row_per_cluster(
    fake: FakeKubernetes, tmp_path: Path
) -> None:
    from tests.test_cli import invoke

    fake.put(_node("node-a", ready=True))
    fake.put(_node("node-b", ready=False))
    fake.put_deployment("shop", "web", replicas=2, node="node-a")
    resource = _resource(tmp_path, fake.url)
    done = invoke(
        ["clusters", "check"],
        tmp_path,
        TIMBEL_CLUSTERS_FILE=str(resource.clusters_file),
        COLUMNS="100",
        **{TOKEN_ENV: TOKEN},
    )
    assert done.returncode == 1, done.stderr  # one cluster unreachable, one not ready
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split() == [
        "CLUSTER", "STATE", "VERSION", "NODES", "PODS", "CRASHING", "NOT", "RUNNING", "STUCK",
        "WARNINGS",
    ]  # fmt: skip
    dev, gone = lines[2].split(), lines[3].split()
    assert dev[:2] == ["dev", "PROBLEMS"] and dev[3:5] == ["1/2", "ready"] and dev[5] == "2"
    assert gone[:3] == ["gone", "UNREACHABLE", "-"] and set(gone[3:]) == {"-"}
    assert lines[4] == "  dev: nodes not ready: node-b"
    assert lines[5].startswith("  gone: ") and "cannot reach" in lines[5]
