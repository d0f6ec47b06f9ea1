"""Which clusters a Prometheus holds: labelled, unlabelled (one cluster) and mixed, named by
PROMETHEUS_CLUSTER_NAME or the clusters file, with the exact notices and errors."""

from __future__ import annotations

import pytest

from timbel_dagster.resources.prometheus_clusters import (
    DEFAULT_CLUSTER_NAME,
    DISCOVERY_METRICS,
    ClusterLabelError,
    LabelScan,
    resolve,
    scan_query,
)

TWO = LabelScan(frozenset({"east", "west"}), ())
BARE = LabelScan(frozenset(), ("kube_node_info", "kube_pod_info"))
MIXED = LabelScan(frozenset({"east"}), ("container_cpu_usage_seconds_total",))
NOTHING = LabelScan(frozenset(), ())
DEFAULT_NOTICE = (
    "Prometheus series carry no 'cluster' label: they are collected as one cluster named "
    "'default-cluster'; set PROMETHEUS_CLUSTER_NAME (or list that one cluster in "
    "TIMBEL_CLUSTERS_FILE) to name it"
)


@pytest.mark.parametrize(
    ("found", "configured", "name", "clusters", "unlabelled", "notices"),
    [
        # Labelled (multi-cluster): every value of the label, or the clusters file's names.
        (TWO, None, None, ("east", "west"), None, ()),
        (TWO, ["west"], None, ("west",), None, ()),
        (
            TWO,
            ["east", "gone"],
            None,
            ("east", "gone"),
            None,
            (
                "TIMBEL_CLUSTERS_FILE lists clusters no series name in the 'cluster' label: "
                "gone (Prometheus has: east, west)",
            ),
        ),
        (
            TWO,
            None,
            "solo",
            ("east", "west"),
            None,
            (
                "PROMETHEUS_CLUSTER_NAME ('solo') is not used: the series name their cluster "
                "in the 'cluster' label (east, west)",
            ),
        ),
        (TWO, None, "east", ("east", "west"), None, ()),
        # Unlabelled (kube-prometheus-stack's default): one cluster, named in this order.
        (BARE, None, "seoul-prod-01", ("seoul-prod-01",), "seoul-prod-01", ()),
        (BARE, ["seoul-prod-01"], None, ("seoul-prod-01",), "seoul-prod-01", ()),
        (BARE, None, None, (DEFAULT_CLUSTER_NAME,), DEFAULT_CLUSTER_NAME, (DEFAULT_NOTICE,)),
        (
            BARE,
            ["a", "b"],
            "b",
            ("b",),
            "b",
            (
                "Prometheus holds one cluster, 'b'; the other clusters of TIMBEL_CLUSTERS_FILE "
                "have no metrics in it: a",
            ),
        ),
        # Mixed: the unlabelled series are named or left out, never silently.
        (
            MIXED,
            None,
            None,
            ("east",),
            None,
            (
                "some series carry no 'cluster' label (container_cpu_usage_seconds_total) "
                "while others name their cluster (east): the unlabelled ones are not "
                "collected; give them the label (Prometheus external_labels or a relabel "
                "rule) or set PROMETHEUS_CLUSTER_NAME to collect them as one more cluster",
            ),
        ),
        (
            MIXED,
            None,
            "hub",
            ("east", "hub"),
            "hub",
            (
                "some series carry no 'cluster' label (container_cpu_usage_seconds_total): "
                "they are collected as cluster 'hub' (PROMETHEUS_CLUSTER_NAME), beside the "
                "labelled clusters (east)",
            ),
        ),
        # Nothing scraped in the window: the clusters file as it is, else none.
        (NOTHING, ["a"], None, ("a",), None, ()),
        (NOTHING, None, None, (), None, ()),
    ],
)
def test_resolve(found, configured, name, clusters, unlabelled, notices) -> None:
    layout = resolve(found, "cluster", configured, name)
    assert (layout.clusters, layout.unlabelled, layout.notices) == (clusters, unlabelled, notices)


@pytest.mark.parametrize(
    ("found", "configured", "name", "message"),
    [
        (
            BARE,
            ["a", "b"],
            None,
            "Prometheus series carry no 'cluster' label, so they are one cluster, but "
            "TIMBEL_CLUSTERS_FILE lists 2 (a, b): set PROMETHEUS_CLUSTER_NAME to the cluster "
            "this Prometheus scrapes",
        ),
        (
            BARE,
            ["a"],
            "x",
            "PROMETHEUS_CLUSTER_NAME is 'x', which TIMBEL_CLUSTERS_FILE does not list "
            "(it lists: a)",
        ),
        (
            MIXED,
            None,
            "east",
            "PROMETHEUS_CLUSTER_NAME is 'east', which Prometheus also has as a value of the "
            "'cluster' label: name the series without the label otherwise",
        ),
    ],
)
def test_resolve_refuses_what_cannot_be_told_apart(found, configured, name, message) -> None:
    with pytest.raises(ClusterLabelError) as raised:
        resolve(found, "cluster", configured, name)
    assert str(raised.value) == message


def test_scan_query_counts_every_discovery_metric_by_name_and_label() -> None:
    query = scan_query("region")
    assert query.startswith("count by (__name__, region) ({__name__=~")
    assert all(metric in query for metric in DISCOVERY_METRICS)
