"""What cluster-metrics sources return and the warehouse stores: hourly usage of nodes and
pods, and namespace facts.

The Prometheus source (kube-prometheus series) and the sample organisation both produce
these records (resources/cluster_metrics.py holds the interface they implement). A value a
cluster does not expose is None, never a guess.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class NodeHour:
    cluster: str
    node: str
    hour: dt.datetime
    cpu_capacity_cores: float | None
    cpu_used_cores: float | None
    cpu_used_cores_max: float | None
    memory_capacity_bytes: float | None
    memory_used_bytes: float | None
    memory_used_bytes_max: float | None
    disk_capacity_bytes: float | None = None
    disk_used_bytes: float | None = None
    network_receive_bytes: float | None = None
    network_transmit_bytes: float | None = None
    conditions: dict[str, bool] = field(default_factory=dict)  # Ready, MemoryPressure, ...

    @property
    def ready(self) -> bool | None:
        return self.conditions.get("Ready")


@dataclass(frozen=True)
class PodHour:
    cluster: str
    namespace: str
    pod: str
    hour: dt.datetime
    workload: str  # the owning Deployment/StatefulSet/DaemonSet/Job, else the pod itself
    workload_kind: str | None
    node: str | None
    phase: str | None
    cpu_used_cores: float
    cpu_used_cores_max: float
    cpu_requested_cores: float
    cpu_limit_cores: float | None
    memory_used_bytes: float
    memory_used_bytes_max: float
    memory_requested_bytes: float
    memory_limit_bytes: float | None
    storage_bytes: float = 0.0
    network_receive_bytes: float | None = None
    network_transmit_bytes: float | None = None
    restarts: int = 0
    crash_looping: bool = False


@dataclass(frozen=True)
class NamespaceInfo:
    cluster: str
    namespace: str
    hour: dt.datetime
    tenant: str  # the namespace's `timbel.io/tenant` label, else its name
    cpu_quota_cores: float | None
    memory_quota_bytes: float | None
