"""Hourly cluster usage from kube-prometheus series in a real Prometheus (promtool-loaded)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.conftest import missing_service
from tests.services.kube_series import GIB, HOURS, write_kube_history
from tests.services.prometheus import running_prometheus
from timbel_dagster.resources.errors import TransientSourceError
from timbel_dagster.resources.kube_prometheus import KubePrometheusSource, counter_increase
from timbel_dagster.resources.prometheus import PrometheusClient, Series


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubePrometheusSource]:
    try:
        with running_prometheus(tmp_path_factory.mktemp("kube"), write_kube_history) as url:
            yield KubePrometheusSource(PrometheusClient(url))
    except FileNotFoundError as error:
        missing_service(str(error))


def test_nodes_summarise_each_hour(source: KubePrometheusSource) -> None:
    rows = {(n.node, n.hour): n for n in source.nodes("east", HOURS)}
    assert {node for node, _ in rows} == {"east-1", "east-2"}  # west is another cluster
    assert {hour for _, hour in rows} == set(HOURS)
    east1 = rows["east-1", HOURS[0]]
    assert east1.cpu_capacity_cores == 4
    assert east1.memory_capacity_bytes == 16 * GIB
    assert east1.cpu_used_cores == pytest.approx(0.75, rel=1e-3)  # 0.5 pod + 0.25 system
    assert east1.memory_used_bytes == 6 * GIB
    assert east1.conditions == {"MemoryPressure": False, "Ready": True}
    assert rows["east-2", HOURS[0]].ready is False


def test_pods_resolve_owners_and_usage(source: KubePrometheusSource) -> None:
    rows = {(p.pod, p.hour): p for p in source.pods("east", HOURS)}
    assert len(rows) == 3 * len(HOURS)
    web = rows["web-7d9f-abcde", HOURS[0]]
    assert (web.namespace, web.workload, web.workload_kind) == ("shop", "web", "Deployment")
    assert web.node == "east-1"
    assert web.phase == "Running"
    assert web.cpu_used_cores == pytest.approx(0.5, rel=1e-3)
    assert web.cpu_requested_cores == 1.0
    assert web.memory_requested_bytes == 2 * GIB
    assert web.memory_used_bytes == 1 * GIB
    etl = rows["etl-0", HOURS[0]]
    assert (etl.workload, etl.workload_kind) == ("etl", "StatefulSet")


def test_restarts_and_crash_loops_land_in_their_hour(source: KubePrometheusSource) -> None:
    rows = {(p.pod, p.hour): p for p in source.pods("east", HOURS)}
    assert [rows["etl-0", h].restarts for h in HOURS] == [0, 1, 0]
    assert [rows["etl-0", h].crash_looping for h in HOURS] == [False, True, False]
    assert not any(rows["web-7d9f-abcde", h].crash_looping for h in HOURS)


def test_namespaces_carry_quota_and_tenant(source: KubePrometheusSource) -> None:
    rows = {(n.namespace, n.hour): n for n in source.namespaces("east", HOURS[:1])}
    assert rows["shop", HOURS[0]].cpu_quota_cores == 2.5
    assert rows["shop", HOURS[0]].tenant == "retail"
    assert rows["data", HOURS[0]].tenant == "data"  # no label: the namespace's own name
    assert rows["data", HOURS[0]].cpu_quota_cores is None


def test_cluster_label_is_configurable(source: KubePrometheusSource) -> None:
    other = KubePrometheusSource(source.client, cluster_label="region")
    assert other.nodes("east", HOURS) == []  # no series carry a `region` label


def test_prometheus_down_is_a_clear_transient_error() -> None:
    down = KubePrometheusSource(PrometheusClient("http://127.0.0.1:9", timeout_seconds=2))
    with pytest.raises(TransientSourceError, match=r"cannot reach http://127\.0\.0\.1:9"):
        down.nodes("east", HOURS)


def _series(*values: float) -> Series:
    start = HOURS[0] - dt.timedelta(minutes=1)
    return Series(
        (("pod", "p"),),
        tuple((start + dt.timedelta(minutes=i), v) for i, v in enumerate(values)),
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((0, 0, 0), 0.0),
        ((0, 2, 3), 3.0),
        ((5, 1, 2), 2.0),  # reset: the new value is the growth
        ((3,), 0.0),  # one sample: nothing to compare
    ],
)
def test_counter_increase_handles_resets(values: tuple[float, ...], expected: float) -> None:
    assert (
        counter_increase([_series(*values)], ("pod",), set(HOURS)).get((("p",), HOURS[0]), 0.0)
        == expected
    )
