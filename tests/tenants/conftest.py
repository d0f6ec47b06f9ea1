"""Two fake clusters of different Kubernetes versions, a clusters file naming them (and a
production cluster that is never reachable), and a warehouse with the sample users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.kubernetes_server import FakeKubernetes
from timbel_dagster.resources.kubernetes import KubernetesResource

TOKEN = "tenant-test-token"
TOKEN_ENV = "TIMBEL_TEST_TENANT_TOKEN"
ACTOR = "minji.kim"  # a user of the sample organisation


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture
def dev() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes(token=TOKEN, git_version="v1.29.4")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def staging() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes(token=TOKEN, git_version="v1.31.2")
    server.start()
    yield server
    server.stop()


def write_clusters_file(path: Path, dev_url: str, staging_url: str) -> Path:
    path.write_text(
        "clusters:\n"
        f"  - {{name: seoul-dev-01, group: dev, api_url: '{dev_url}', token_env: {TOKEN_ENV},"
        " kubernetes_version: '1.29'}\n"
        f"  - {{name: seoul-stg-01, group: staging, api_url: '{staging_url}',"
        f" token_env: {TOKEN_ENV}}}\n"
        "  - {name: seoul-prod-01, group: prod, context: prod-admin}\n"
    )
    return path


@pytest.fixture
def clusters_file(dev: FakeKubernetes, staging: FakeKubernetes, tmp_path: Path) -> Path:
    return write_clusters_file(tmp_path / "clusters.yaml", dev.url, staging.url)


@pytest.fixture
def kubernetes(clusters_file: Path, tmp_path: Path) -> KubernetesResource:
    # An empty kubeconfig: the prod cluster's context is never found, whatever ~/.kube holds.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return KubernetesResource(
        clusters_file=str(clusters_file), kubeconfig=str(kubeconfig), timeout_seconds=5
    )


@pytest.fixture
def engine(warehouse_url: str, sample_source):
    """The warehouse (SQLite, then PostgreSQL) with the sample organisation's users."""
    from timbel_dagster.assets.ingestion import ingest_directory
    from timbel_dagster.warehouse.engine import get_engine

    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        ingest_directory(connection, sample_source)
    return engine
