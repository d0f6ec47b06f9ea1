"""A single-cluster Prometheus (series without a `cluster` label, as kube-prometheus-stack
installs it) through `collect_metrics` and the discovery sensor: usage and cost rows are
stored under the cluster's configured name, and mismatches are said in one line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import text

from tests.conftest import missing_service
from tests.services.kube_series import HOURS, UNLABELLED_EAST, write_kube_history
from tests.services.prometheus import running_prometheus
from timbel_dagster.metrics_collect import collect_metrics
from timbel_dagster.partitions import CLUSTERS
from timbel_dagster.records.cluster_metrics import HOUR
from timbel_dagster.resources.prometheus import PrometheusResource
from timbel_dagster.resources.prometheus_clusters import ClusterLabelError
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.clusters import cluster_discovery_sensor
from timbel_dagster.settings import Settings, get_settings, load_settings
from timbel_dagster.warehouse.engine import get_engine

NOW = HOURS[-1] + HOUR  # `collect --hours 3` at this moment reads exactly HOURS
DEFAULT_NOTICE = (
    "warning: Prometheus series carry no 'cluster' label: they are collected as one cluster "
    "named 'default-cluster'; set PROMETHEUS_CLUSTER_NAME (or list that one cluster in "
    "TIMBEL_CLUSTERS_FILE) to name it"
)


def _clusters_file(path: Path, *names: str) -> str:
    path.write_text(
        "clusters:\n"
        + "".join(f"  - name: {n}\n    group: prod\n    context: {n}-admin\n" for n in names)
    )
    return str(path)


def _serve(factory: pytest.TempPathFactory, write) -> Iterator[str]:
    try:
        with running_prometheus(factory.mktemp("single"), write) as url:
            yield url
    except FileNotFoundError as error:
        missing_service(str(error))


@pytest.fixture(scope="module")
def single_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """East's history alone, without the `cluster` label."""
    yield from _serve(tmp_path_factory, partial(write_kube_history, clusters=UNLABELLED_EAST))


def _write_recent(path: Path) -> None:
    """Two hours up to now of one pod's unlabelled kube-state-metrics series (no node
    capacity, no cAdvisor): what discovery (the ten minutes before now) and the last
    completed hour see on a live single-cluster Prometheus."""
    now = int(time.time())
    with path.open("w") as out:
        for name, extra in (
            ("kube_pod_info", ',node="n1"'),
            ("kube_pod_status_phase", ',phase="Running"'),
        ):
            out.write(f"# TYPE {name} gauge\n")
            for t in range(now - 7200, now - 30, 15):
                out.write(f'{name}{{namespace="shop",pod="web-1"{extra}}} 1.0 {t}\n')
        out.write("# EOF\n")


@pytest.fixture(scope="module")
def recent_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory, _write_recent)


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Live mode from the environment; the cached settings are dropped before and after."""
    for name in (
        "PROMETHEUS_CLUSTER_NAME",
        "PROMETHEUS_CLUSTER_LABEL",
        "TIMBEL_CLUSTERS_FILE",
        "TIMBEL_SAMPLE_DATA",
    ):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _settings(env: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str]) -> Settings:
    values = {
        "TIMBEL_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "TIMBEL_USER": "minji.kim",
        **values,
    }
    for name, value in values.items():
        env.setenv(name, value)
    get_settings.cache_clear()
    return load_settings()


@pytest.mark.parametrize(
    ("naming", "cluster"),
    [("setting", "seoul-prod-01"), ("clusters-file", "seoul-prod-01"), ("default", None)],
)
def test_single_cluster_is_collected_under_its_name(
    warehouse_url: str,
    single_prometheus: str,
    live_env: pytest.MonkeyPatch,
    tmp_path: Path,
    naming: str,
    cluster: str | None,
) -> None:
    values = {"PROMETHEUS_URL": single_prometheus, "TIMBEL_DATABASE_URL": warehouse_url}
    if naming == "setting":
        values["PROMETHEUS_CLUSTER_NAME"] = "seoul-prod-01"
    elif naming == "clusters-file":
        values["TIMBEL_CLUSTERS_FILE"] = _clusters_file(tmp_path / "c.yaml", "seoul-prod-01")
    lines: list[str] = []
    report = collect_metrics(_settings(live_env, tmp_path, values), 3, lines.append, now=NOW)
    name = cluster or "default-cluster"
    assert report["clusters"] == [name]
    assert [line for line in lines if line.startswith("warning:")] == (
        [] if cluster else [DEFAULT_NOTICE]
    )
    with get_engine(warehouse_url).connect() as connection:

        def rows(query: str) -> list[tuple]:
            return [tuple(r) for r in connection.execute(text(query))]

        nodes = rows("SELECT cluster, node, COUNT(*) FROM node_metrics GROUP BY cluster, node")
        pods = rows("SELECT DISTINCT cluster, pod FROM pod_metrics")
        costs = rows(
            "SELECT cluster, namespace, workload, COUNT(*), SUM(total_cost) > 0 "
            "FROM cost_allocations GROUP BY cluster, namespace, workload"
        )
        clusters = rows("SELECT cluster, COUNT(*) FROM cluster_costs GROUP BY cluster")
        crash = rows("SELECT cluster, workload FROM workload_status WHERE crash_looping_pods > 0")
    assert sorted(nodes) == [(name, "east-1", 3), (name, "east-2", 3)]
    assert sorted(pods) == [(name, "etl-0"), (name, "web-7d9f-abcde"), (name, "web-7d9f-fghij")]
    assert sorted(costs) == [(name, "data", "etl", 3, True), (name, "shop", "web", 3, True)]
    assert clusters == [(name, 3)]
    assert crash == [(name, "etl")]
    assert {(r["cluster"], r["namespace"]) for r in report["namespaces"]} == {
        (name, "data"),
        (name, "shop"),
    }


def test_two_clusters_in_the_file_for_an_unlabelled_prometheus_is_one_clear_error(
    warehouse_url: str, single_prometheus: str, live_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = {
        "PROMETHEUS_URL": single_prometheus,
        "TIMBEL_DATABASE_URL": warehouse_url,
        "TIMBEL_CLUSTERS_FILE": _clusters_file(tmp_path / "c.yaml", "seoul-prod-01", "busan-01"),
    }
    with pytest.raises(ClusterLabelError) as raised:
        collect_metrics(_settings(live_env, tmp_path, values), 3, print, now=NOW)
    assert str(raised.value) == (
        "Prometheus series carry no 'cluster' label, so they are one cluster, but "
        "TIMBEL_CLUSTERS_FILE lists 2 (busan-01, seoul-prod-01): set PROMETHEUS_CLUSTER_NAME "
        "to the cluster this Prometheus scrapes"
    )
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM node_metrics")).scalar() == 0


def test_discovery_sensor_adds_the_single_cluster(
    recent_prometheus: str, live_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sources = DeliverySourcesResource(
        mode="live", prometheus=PrometheusResource(url=recent_prometheus)
    )
    with dg.DagsterInstance.ephemeral() as instance:
        for setting, expected in ((None, "default-cluster"), ("seoul-prod-01", "seoul-prod-01")):
            if setting:
                live_env.setenv("PROMETHEUS_CLUSTER_NAME", setting)
            get_settings.cache_clear()
            with dg.build_sensor_context(
                instance=instance, resources={"sources": sources}
            ) as context:
                result = cluster_discovery_sensor(context)
            add = [
                r
                for r in result.dynamic_partitions_requests
                if isinstance(r, dg.AddDynamicPartitionsRequest)
            ]
            assert [list(r.partition_keys) for r in add] == [[expected]]
            assert add[0].partitions_def_name == CLUSTERS.name


def test_collect_of_the_last_hour_with_pods_but_no_node_capacity(
    warehouse_url: str, recent_prometheus: str, live_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = {
        "PROMETHEUS_URL": recent_prometheus,
        "TIMBEL_DATABASE_URL": warehouse_url,
        "PROMETHEUS_CLUSTER_NAME": "seoul-dev-01",
    }
    report = collect_metrics(_settings(live_env, tmp_path, values), 1, print)
    assert report["clusters"] == ["seoul-dev-01"]
    assert report["rows_written"]["cluster/pod_metrics"] == 1
    assert [(r["cluster"], r["namespace"], r["cost_usd"]) for r in report["namespaces"]] == [
        ("seoul-dev-01", "shop", 0.0)
    ]
