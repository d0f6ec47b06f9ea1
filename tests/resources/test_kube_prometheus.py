"""Hourly cluster usage from kube-prometheus series in a real Prometheus (promtool-loaded):
a multi-cluster Prometheus (a `cluster` label), a single-cluster one (no label, as
kube-prometheus-stack installs it) and one that holds both kinds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from functools import partial

import pytest

from tests.conftest import missing_service
from tests.services.kube_series import (
    GIB,
    HOURS,
    LABELLED,
    UNLABELLED_EAST,
    write_kube_history,
)
from tests.services.prometheus import running_prometheus
from timbel_dagster.records.cluster_metrics import HOUR
from timbel_dagster.resources.errors import TransientSourceError
from timbel_dagster.resources.kube_prometheus import KubePrometheusSource, counter_increase
from timbel_dagster.resources.prometheus import PrometheusClient, Series
from timbel_dagster.resources.prometheus_clusters import ClusterLabelError

END = HOURS[-1] + HOUR  # the history's last sample is just before


class RecordingClient(PrometheusClient):
    """The real client, keeping every PromQL query it sends."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.queries: list[str] = []

    def range_query(self, query, start, end, step):  # type: ignore[override]
        self.queries.append(query)
        return super().range_query(query, start, end, step)


def _prometheus(factory: pytest.TempPathFactory, clusters: dict) -> Iterator[str]:
    try:
        with running_prometheus(
            factory.mktemp("kube"), partial(write_kube_history, clusters=clusters)
        ) as url:
            yield url
    except FileNotFoundError as error:
        missing_service(str(error))


@pytest.fixture(scope="module")
def labelled_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _prometheus(tmp_path_factory, LABELLED)


@pytest.fixture(scope="module")
def unlabelled_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """East alone, its series without a `cluster` label."""
    yield from _prometheus(tmp_path_factory, UNLABELLED_EAST)


@pytest.fixture(scope="module")
def mixed_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """East labelled, west without the label, in one Prometheus."""
    yield from _prometheus(tmp_path_factory, {"east": "east", "west": None})


@pytest.fixture(scope="module")
def source(labelled_url: str) -> KubePrometheusSource:
    return KubePrometheusSource(PrometheusClient(labelled_url))


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


def _as(rows: list, cluster: str) -> list:
    return [dataclasses.replace(row, cluster=cluster) for row in rows]


def test_labelled_clusters_are_discovered(source: KubePrometheusSource) -> None:
    fresh = KubePrometheusSource(source.client)
    assert fresh.cluster_names(END) == ["east", "west"]
    assert fresh.notices == []


def test_no_series_discovers_no_cluster_and_says_why(source: KubePrometheusSource) -> None:
    fresh = KubePrometheusSource(source.client)
    assert fresh.cluster_names(END + dt.timedelta(days=1)) == []
    assert fresh.notices == [
        "no kube-state-metrics or cAdvisor series in Prometheus from 2026-11-03 03:50 to "
        "2026-11-03 04:00 UTC"
    ]


def test_unlabelled_series_are_one_cluster_with_the_default_name(
    unlabelled_url: str, source: KubePrometheusSource
) -> None:
    client = RecordingClient(unlabelled_url)
    single = KubePrometheusSource(client)
    assert single.cluster_names(END) == ["default-cluster"]
    assert single.notices == [
        "Prometheus series carry no 'cluster' label: they are collected as one cluster named "
        "'default-cluster'; set PROMETHEUS_CLUSTER_NAME (or list that one cluster in "
        "TIMBEL_CLUSTERS_FILE) to name it"
    ]
    # The same figures as east's in the labelled Prometheus, under the single cluster's name.
    assert single.nodes("default-cluster", HOURS) == _as(
        source.nodes("east", HOURS), "default-cluster"
    )
    assert single.pods("default-cluster", HOURS) == _as(
        source.pods("east", HOURS), "default-cluster"
    )
    assert single.namespaces("default-cluster", HOURS) == _as(
        source.namespaces("east", HOURS), "default-cluster"
    )
    assert len(client.queries) > 20
    assert not [q for q in client.queries if "cluster=" in q]  # no cluster matcher at all


@pytest.mark.parametrize(
    "naming",
    [{"cluster_name": "seoul-prod-01"}, {"clusters": ["seoul-prod-01"]}],
    ids=["setting", "clusters-file"],
)
def test_the_single_cluster_is_named_by_the_setting_or_the_clusters_file(
    unlabelled_url: str, naming: dict
) -> None:
    single = KubePrometheusSource(PrometheusClient(unlabelled_url), **naming)
    assert single.cluster_names(END) == ["seoul-prod-01"]
    rows = single.pods("seoul-prod-01", HOURS)
    assert {(p.cluster, p.pod) for p in rows} == {
        ("seoul-prod-01", "web-7d9f-abcde"),
        ("seoul-prod-01", "web-7d9f-fghij"),
        ("seoul-prod-01", "etl-0"),
    }
    assert [p.restarts for p in rows if p.pod == "etl-0"] == [0, 1, 0]
    assert single.notices == []


def test_a_cluster_the_unlabelled_prometheus_does_not_hold_is_reported(
    unlabelled_url: str,
) -> None:
    single = KubePrometheusSource(PrometheusClient(unlabelled_url), cluster_name="seoul-prod-01")
    assert single.nodes("east", HOURS) == []
    assert single.notices == [
        "cluster 'east': no series with cluster=\"east\" in Prometheus from 2026-11-02 01:00 "
        "to 2026-11-02 04:00 UTC (they are collected as 'seoul-prod-01')"
    ]


def test_unlabelled_series_and_two_clusters_in_the_file_is_an_error(unlabelled_url: str) -> None:
    single = KubePrometheusSource(PrometheusClient(unlabelled_url), clusters=["east", "west"])
    message = (
        "Prometheus series carry no 'cluster' label, so they are one cluster, but "
        "TIMBEL_CLUSTERS_FILE lists 2 (east, west): set PROMETHEUS_CLUSTER_NAME to the "
        "cluster this Prometheus scrapes"
    )
    with pytest.raises(ClusterLabelError) as discovered:
        single.cluster_names(END)
    assert str(discovered.value) == message
    with pytest.raises(ClusterLabelError) as read:
        single.nodes("east", HOURS)
    assert str(read.value) == message


def test_clusters_file_names_a_labelled_cluster_as_before(labelled_url: str) -> None:
    client = RecordingClient(labelled_url)
    named = KubePrometheusSource(client, clusters=["west", "gone"])
    assert named.cluster_names(END) == ["west", "gone"]
    assert {n.node for n in named.nodes("west", HOURS)} == {"west-1"}
    assert named.nodes("gone", HOURS) == []
    assert named.notices == [
        "TIMBEL_CLUSTERS_FILE lists clusters no series name in the 'cluster' label: gone "
        "(Prometheus has: east, west)",
        "cluster 'gone': no series with cluster=\"gone\" in Prometheus from 2026-11-02 01:00 "
        "to 2026-11-02 04:00 UTC (it has: east, west)",
    ]
    assert 'kube_node_status_capacity{cluster="west", resource="cpu"}' in client.queries


def test_mixed_prometheus_leaves_unlabelled_series_out_and_says_so(
    mixed_url: str, source: KubePrometheusSource
) -> None:
    mixed = KubePrometheusSource(PrometheusClient(mixed_url))
    assert mixed.cluster_names(END) == ["east"]
    assert mixed.nodes("east", HOURS) == source.nodes("east", HOURS)
    assert mixed.notices == [
        "some series carry no 'cluster' label (container_cpu_usage_seconds_total, "
        "container_memory_working_set_bytes and 4 more) while others name their cluster "
        "(east): the unlabelled ones are not collected; give them the label (Prometheus "
        "external_labels or a relabel rule) or set PROMETHEUS_CLUSTER_NAME to collect them as "
        "one more cluster"
    ]


def test_mixed_prometheus_collects_unlabelled_series_under_the_set_name(
    mixed_url: str, source: KubePrometheusSource
) -> None:
    client = RecordingClient(mixed_url)
    mixed = KubePrometheusSource(client, cluster_name="hub")
    assert mixed.cluster_names(END) == ["east", "hub"]
    assert mixed.nodes("east", HOURS) == source.nodes("east", HOURS)
    assert mixed.pods("hub", HOURS) == _as(source.pods("west", HOURS), "hub")
    assert 'kube_node_status_capacity{cluster="", resource="cpu"}' not in client.queries
    mixed.nodes("hub", HOURS)
    assert 'kube_node_status_capacity{cluster="", resource="cpu"}' in client.queries
