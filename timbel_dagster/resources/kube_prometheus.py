"""Cluster usage from the series a kube-prometheus stack exposes (cAdvisor through the
kubelet, kube-state-metrics), hour by hour.

Each figure is one PromQL range query per cluster over all the hours asked for (split by the
client under Prometheus' point limit), at `step` resolution, then summarised per hour here:
mean and peak for gauges and rates, the last value for states, the sum of increases for
counters. The cluster is the value of a configurable label (`cluster` by default), which is
how multi-cluster setups (Thanos, Mimir, federation) tell clusters apart; a Prometheus whose
series carry no such label holds one cluster, queried without a cluster matcher
(`prometheus_clusters` decides which case a window is).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.cluster_metrics import HOUR, NamespaceInfo, NodeHour, PodHour
from timbel_dagster.resources.prometheus_clusters import PrometheusClusters

if TYPE_CHECKING:
    from timbel_dagster.resources.prometheus import PrometheusClient, Series

Key = tuple[str, ...]
Buckets = dict[tuple[Key, dt.datetime], list[float]]

CONTAINERS = 'container!="", container!="POD"'  # per-container series, not pod/root cgroups
ROOT = 'id="/"'  # cAdvisor's root cgroup: the whole node
TENANT_LABEL = "label_timbel_io_tenant"  # kube_namespace_labels for `timbel.io/tenant`


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def bucket(series: Iterable[Series], keys: tuple[str, ...], hours: set[dt.datetime]) -> Buckets:
    """Samples grouped by the series' `keys` label values and by hour (only `hours`)."""
    out: Buckets = defaultdict(list)
    for one in series:
        key = tuple(one.label(k) or "" for k in keys)
        for moment, value in one.samples:
            hour = hour_of(moment)
            if hour in hours:
                out[key, hour].append(value)
    return out


def counter_increase(
    series: Iterable[Series], keys: tuple[str, ...], hours: set[dt.datetime]
) -> dict[tuple[Key, dt.datetime], float]:
    """Per key and hour, how much a counter grew: the sum of its positive steps (a drop is a
    reset, after which the new value is the growth), credited to the hour of the later
    sample."""
    out: dict[tuple[Key, dt.datetime], float] = defaultdict(float)
    for one in series:
        key = tuple(one.label(k) or "" for k in keys)
        previous: float | None = None
        for moment, value in one.samples:
            hour = hour_of(moment)
            if previous is not None and hour in hours:
                out[key, hour] += value - previous if value >= previous else value
            previous = value
    return out


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def _max(values: list[float] | None) -> float | None:
    return max(values) if values else None


def _last(values: list[float] | None) -> float | None:
    return values[-1] if values else None


class KubePrometheusSource:
    """A `ClusterMetricsSource` over a Prometheus that scrapes kube-prometheus series."""

    name = "prometheus"

    def __init__(
        self,
        client: PrometheusClient,
        cluster_label: str = "cluster",
        step: dt.timedelta = dt.timedelta(minutes=1),
        clusters: list[str] | None = None,
        cluster_name: str | None = None,
    ) -> None:
        """`clusters` are the clusters file's names (None without one); `cluster_name` names
        the cluster of series without the cluster label (PROMETHEUS_CLUSTER_NAME)."""
        self.client, self.cluster_label, self.step = client, cluster_label, step
        self.clusters = PrometheusClusters(client, cluster_label, step, clusters, cluster_name)
        self.notices = self.clusters.notices  # what the operator should know, each once

    def _query(self, query: str, hours: list[dt.datetime], lead: bool = False) -> list[Series]:
        start = hours[0] - self.step if lead else hours[0]
        return self.client.range_query(query, start, hours[-1] + HOUR - self.step, self.step)

    def cluster_names(self, at: dt.datetime | None = None) -> list[str]:
        """The clusters whose kube-state-metrics or cAdvisor series Prometheus has in the ten
        minutes before `at` (default now): the clusters file's, checked against them, else
        every value of the cluster label, or the one cluster of series without it."""
        return self.clusters.names(at)

    def nodes(self, cluster: str, hours: list[dt.datetime]) -> list[NodeHour]:
        wanted = set(hours)
        select = self.clusters.selector(cluster, hours)
        root = select(ROOT)

        def per_node(query: str) -> Buckets:
            return bucket(self._query(query, hours), ("node",), wanted)

        cpu_capacity = per_node("kube_node_status_capacity" + select('resource="cpu"'))
        memory_capacity = per_node("kube_node_status_capacity" + select('resource="memory"'))
        cpu = per_node(f"sum by (node) (rate(container_cpu_usage_seconds_total{root}[5m]))")
        memory = per_node(f"sum by (node) (container_memory_working_set_bytes{root})")
        disk_used = per_node(f"sum by (node) (container_fs_usage_bytes{root})")
        disk_capacity = per_node(f"sum by (node) (container_fs_limit_bytes{root})")
        receive = per_node(f"sum by (node) (rate(container_network_receive_bytes_total{root}[5m]))")
        transmit = per_node(
            f"sum by (node) (rate(container_network_transmit_bytes_total{root}[5m]))"
        )
        conditions: dict[tuple[str, dt.datetime], dict[str, bool]] = defaultdict(dict)
        condition_query = "kube_node_status_condition" + select('status="true"')
        for ((name, condition), hour), values in sorted(
            bucket(self._query(condition_query, hours), ("node", "condition"), wanted).items()
        ):
            conditions[name, hour][condition] = bool(_last(values))
        found = {(k[0], h) for k, h in (*cpu_capacity, *cpu, *memory)} | set(conditions)
        rows = []
        for name, hour in sorted(found):
            at = ((name,), hour)
            rows.append(
                NodeHour(
                    cluster=cluster,
                    node=name,
                    hour=hour,
                    cpu_capacity_cores=_last(cpu_capacity.get(at)),
                    cpu_used_cores=_mean(cpu.get(at)),
                    cpu_used_cores_max=_max(cpu.get(at)),
                    memory_capacity_bytes=_last(memory_capacity.get(at)),
                    memory_used_bytes=_mean(memory.get(at)),
                    memory_used_bytes_max=_max(memory.get(at)),
                    disk_capacity_bytes=_last(disk_capacity.get(at)),
                    disk_used_bytes=_mean(disk_used.get(at)),
                    network_receive_bytes=_per_hour(receive.get(at)),
                    network_transmit_bytes=_per_hour(transmit.get(at)),
                    conditions=dict(sorted(conditions.get((name, hour), {}).items())),
                )
            )
        return rows

    def pods(self, cluster: str, hours: list[dt.datetime]) -> list[PodHour]:
        wanted = set(hours)
        pod_key = ("namespace", "pod")
        select = self.clusters.selector(cluster, hours)
        sel = select()
        containers = select(CONTAINERS)

        def per_pod(query: str) -> Buckets:
            return bucket(self._query(query, hours), pod_key, wanted)

        def per_resource(metric: str) -> dict[str, Buckets]:
            matcher = select('resource=~"cpu|memory"')
            query = f"sum by (namespace, pod, resource) ({metric}{matcher})"
            series = self._query(query, hours)
            return {
                resource: bucket(
                    [s for s in series if s.label("resource") == resource], pod_key, wanted
                )
                for resource in ("cpu", "memory")
            }

        cpu = per_pod(
            f"sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{containers}[5m]))"
        )
        memory = per_pod(
            f"sum by (namespace, pod) (container_memory_working_set_bytes{containers})"
        )
        requests = per_resource("kube_pod_container_resource_requests")
        limits = per_resource("kube_pod_container_resource_limits")
        receive = per_pod(
            f"sum by (namespace, pod) (rate(container_network_receive_bytes_total{sel}[5m]))"
        )
        transmit = per_pod(
            f"sum by (namespace, pod) (rate(container_network_transmit_bytes_total{sel}[5m]))"
        )
        pvc_bytes = (
            "max by (namespace, persistentvolumeclaim) "
            f"(kube_persistentvolumeclaim_resource_requests_storage_bytes{sel})"
        )
        storage = per_pod(
            f"sum by (namespace, pod) (kube_pod_spec_volumes_persistentvolumeclaims_info{sel}"
            f" * on (namespace, persistentvolumeclaim) group_left() {pvc_bytes})"
        )
        crash = per_pod(
            "max by (namespace, pod) (kube_pod_container_status_waiting_reason"
            + select('reason="CrashLoopBackOff"')
            + ")"
        )
        restarts = counter_increase(
            self._query(
                f"sum by (namespace, pod) (kube_pod_container_status_restarts_total{sel})",
                hours,
                lead=True,
            ),
            pod_key,
            wanted,
        )
        phase = self._labels(f"kube_pod_status_phase{sel} == 1", hours, pod_key, "phase")
        node = self._labels(f"kube_pod_info{sel}", hours, pod_key, "node")
        owners = self._labels(f"kube_pod_owner{sel}", hours, pod_key, "owner_kind", "owner_name")
        deployment_of = {
            (key[0], key[1]): value
            for (key, _), value in self._labels(
                "kube_replicaset_owner" + select('owner_kind="Deployment"'),
                hours,
                ("namespace", "replicaset"),
                "owner_name",
            ).items()
        }
        found = {(k, h) for k, h in (*cpu, *memory, *phase)}
        rows = []
        for key, hour in sorted(found):
            at = (key, hour)
            kind, owner = owners.get(at, (None, None))
            if kind == "ReplicaSet" and (key[0], owner) in deployment_of:
                kind, owner = "Deployment", deployment_of[key[0], owner]
            rows.append(
                PodHour(
                    cluster=cluster,
                    namespace=key[0],
                    pod=key[1],
                    hour=hour,
                    workload=owner or key[1],
                    workload_kind=kind if owner else None,
                    node=node.get(at),
                    phase=phase.get(at),
                    cpu_used_cores=_mean(cpu.get(at)) or 0.0,
                    cpu_used_cores_max=_max(cpu.get(at)) or 0.0,
                    cpu_requested_cores=_mean(requests["cpu"].get(at)) or 0.0,
                    cpu_limit_cores=_mean(limits["cpu"].get(at)),
                    memory_used_bytes=_mean(memory.get(at)) or 0.0,
                    memory_used_bytes_max=_max(memory.get(at)) or 0.0,
                    memory_requested_bytes=_mean(requests["memory"].get(at)) or 0.0,
                    memory_limit_bytes=_mean(limits["memory"].get(at)),
                    storage_bytes=_mean(storage.get(at)) or 0.0,
                    network_receive_bytes=_per_hour(receive.get(at)),
                    network_transmit_bytes=_per_hour(transmit.get(at)),
                    restarts=round(restarts.get(at, 0.0)),
                    crash_looping=bool(_max(crash.get(at))),
                )
            )
        return rows

    def namespaces(self, cluster: str, hours: list[dt.datetime]) -> list[NamespaceInfo]:
        wanted = set(hours)
        key = ("namespace",)
        select = self.clusters.selector(cluster, hours)
        quota = select('type="hard"')
        cpu_quota = bucket(
            self._query(
                f"max by (namespace) (kube_resourcequota{quota[:-1]}, "
                'resource=~"requests.cpu|cpu"})',
                hours,
            ),
            key,
            wanted,
        )
        memory_quota = bucket(
            self._query(
                f"max by (namespace) (kube_resourcequota{quota[:-1]}, "
                'resource=~"requests.memory|memory"})',
                hours,
            ),
            key,
            wanted,
        )
        tenant = self._labels(f"kube_namespace_labels{select()}", hours, key, TENANT_LABEL)
        seen = self._labels(f"kube_namespace_status_phase{select()} == 1", hours, key, "phase")
        found = set(seen) | set(cpu_quota) | set(tenant)
        return [
            NamespaceInfo(
                cluster=cluster,
                namespace=k[0],
                hour=hour,
                tenant=tenant.get((k, hour)) or k[0],
                cpu_quota_cores=_last(cpu_quota.get((k, hour))),
                memory_quota_bytes=_last(memory_quota.get((k, hour))),
            )
            for k, hour in sorted(found)
        ]

    def _labels(
        self, query: str, hours: list[dt.datetime], keys: tuple[str, ...], *labels: str
    ) -> dict[tuple[Key, dt.datetime], Any]:
        """Per key and hour, the value of `labels` on the series seen last in that hour: one
        label's value, or a tuple of several labels' values read from the same query."""
        latest: dict[tuple[Key, dt.datetime], tuple[dt.datetime, Any]] = {}
        wanted = set(hours)
        for one in self._query(query, hours):
            values = tuple(one.label(label) for label in labels)
            if not all(values):
                continue
            value = values[0] if len(values) == 1 else values
            key = tuple(one.label(k) or "" for k in keys)
            for moment, _ in one.samples:
                hour = hour_of(moment)
                if hour in wanted and ((key, hour) not in latest or latest[key, hour][0] <= moment):
                    latest[key, hour] = (moment, value)
        return {at: value for at, (_, value) in latest.items()}


def _per_hour(rates: list[float] | None) -> float | None:
    """Bytes in an hour from per-second rates sampled across it."""
    mean = _mean(rates)
    return None if mean is None else mean * HOUR.total_seconds()
