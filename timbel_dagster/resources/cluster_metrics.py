"""The interface cluster-metrics sources implement. What they return, hourly usage of nodes
and pods and namespace facts, are the records of `timbel_dagster.records.cluster_metrics`.

The Prometheus source (kube-prometheus series) and the sample organisation both produce
these records; the cluster assets only ever see them.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from timbel_dagster.records.cluster_metrics import NamespaceInfo, NodeHour, PodHour

__all__ = ["ClusterMetricsSource"]


class ClusterMetricsSource(Protocol):
    """Usage of the clusters, hour by hour. `hours` are hour starts in UTC, ascending."""

    name: str  # the `source` column value
    notices: list[str]  # what the operator should know about the clusters read (mismatches)

    def cluster_names(self, at: dt.datetime | None = None) -> list[str]:
        """The clusters with metrics shortly before `at` (default now)."""
        ...

    def nodes(self, cluster: str, hours: list[dt.datetime]) -> list[NodeHour]: ...

    def pods(self, cluster: str, hours: list[dt.datetime]) -> list[PodHour]: ...

    def namespaces(self, cluster: str, hours: list[dt.datetime]) -> list[NamespaceInfo]: ...
