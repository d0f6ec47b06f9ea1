"""Cluster usage of the sample organisation, behind the `ClusterMetricsSource` interface.

Deterministic for a seed: every figure is drawn from a generator seeded by the cluster, the
object and the hour, so any hour can be produced alone and always comes out the same. The
shape is what makes the cluster pages worth looking at: a daily load curve, a service that
requests four times what it uses, a namespace that reaches its CPU quota at the daily peak, and
a service that crash-loops in dev now and then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random

from timbel_dagster.records.cluster_metrics import NamespaceInfo, NodeHour, PodHour
from timbel_dagster.resources.sample.organisation import CLUSTERS, SAMPLE_SOURCE, SERVICES

GIB = 1024**3
REPLICAS = {"dev": 1, "staging": 2, "prod": 3}
NODES = {"dev": (3, 8, 32), "staging": (3, 8, 32), "prod": (6, 16, 64)}  # count, cores, GiB
# Service -> share of its CPU request it uses at the daily peak.
UTILISATION = {
    "ml-scoring": 0.22,  # requests four times what it uses: the rightsizing candidate
    "etl-scheduler": 0.5,
    # Commerce runs hot: at the afternoon peak it reaches its CPU quota.
    "search-indexer": 0.95,
    "checkout-web": 0.9,
    "cart-service": 0.85,
}
CRASH_LOOPING = ("seoul-dev-01", "auth-gateway")  # crash-loops after the nightly restore
CRASH_HOURS = (4, 5)  # UTC
STATEFUL = {"ledger-service": 50, "search-indexer": 80, "etl-scheduler": 20}  # PVC GiB
QUOTA_HEADROOM = {"commerce": 1.0}  # the commerce quota equals its requests: near the limit


def _digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def _load(hour: dt.datetime) -> float:
    """Daily curve: lowest around 03:00 UTC, highest around 15:00."""
    return 0.55 + 0.4 * math.sin(2 * math.pi * (hour.hour - 9) / 24)


class SampleMetricsSource:
    name = SAMPLE_SOURCE

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self._groups = {c.name: c.environment_group for c in CLUSTERS}
        self.notices: list[str] = []

    def cluster_names(self, at: dt.datetime | None = None) -> list[str]:
        return [c.name for c in CLUSTERS]

    def _group(self, cluster: str) -> str:
        if cluster not in self._groups:
            raise LookupError(
                f"sample: no cluster {cluster!r}; the sample clusters are {', '.join(self._groups)}"
            )
        return self._groups[cluster]

    def _node_names(self, cluster: str) -> list[str]:
        count = NODES[self._group(cluster)][0]
        return [f"{cluster}-node-{index:02d}" for index in range(1, count + 1)]

    def _requests(self, service: str) -> tuple[float, float]:
        """CPU cores and memory GiB one replica requests."""
        h = _digest(self.seed, "requests", service)
        return 0.25 * (2 + h % 5), 0.5 * (1 + (h >> 8) % 6)

    def pods(self, cluster: str, hours: list[dt.datetime]) -> list[PodHour]:
        group = self._group(cluster)
        nodes = self._node_names(cluster)
        rows = []
        for hour in hours:
            for service in SERVICES:
                cpu_request, memory_request = self._requests(service.name)
                template = f"{_digest(self.seed, cluster, service.name) % 16**10:010x}"
                for replica in range(REPLICAS[group]):
                    pod = f"{service.name}-{template}-{_digest(replica, template) % 36**5:05x}"
                    rng = random.Random(f"{self.seed}:{cluster}:{pod}:{hour.isoformat()}")
                    peak = UTILISATION.get(service.name, 0.6)
                    level = peak * _load(hour) * (0.85 + 0.3 * rng.random())
                    crash = (cluster, service.name) == CRASH_LOOPING and hour.hour in CRASH_HOURS
                    cpu = cpu_request * level
                    memory = memory_request * GIB * min(0.95, 0.45 + 0.4 * level)
                    rows.append(
                        PodHour(
                            cluster=cluster,
                            namespace=service.team,
                            pod=pod,
                            hour=hour,
                            workload=service.name,
                            workload_kind="Deployment",
                            node=nodes[_digest(pod) % len(nodes)],
                            phase="Running",
                            cpu_used_cores=round(cpu, 4),
                            cpu_used_cores_max=round(cpu * (1.2 + 0.3 * rng.random()), 4),
                            cpu_requested_cores=cpu_request,
                            cpu_limit_cores=cpu_request * 2,
                            memory_used_bytes=round(memory),
                            memory_used_bytes_max=round(memory * (1.05 + 0.1 * rng.random())),
                            memory_requested_bytes=memory_request * GIB,
                            memory_limit_bytes=memory_request * GIB,
                            storage_bytes=STATEFUL.get(service.name, 0) * GIB / REPLICAS[group],
                            network_receive_bytes=round(cpu * 3.6e8 * (0.8 + 0.4 * rng.random())),
                            network_transmit_bytes=round(cpu * 2.1e8 * (0.8 + 0.4 * rng.random())),
                            restarts=rng.randint(4, 9) if crash else 0,
                            crash_looping=crash,
                        )
                    )
        return rows

    def nodes(self, cluster: str, hours: list[dt.datetime]) -> list[NodeHour]:
        _, cores, gib = NODES[self._group(cluster)]
        pods = self.pods(cluster, hours)
        rows = []
        for hour in hours:
            for node in self._node_names(cluster):
                mine = [p for p in pods if p.hour == hour and p.node == node]
                rng = random.Random(f"{self.seed}:{cluster}:{node}:{hour.isoformat()}")
                system_cpu, system_memory = 0.3 + 0.2 * rng.random(), (1.5 + rng.random()) * GIB
                cpu = system_cpu + sum(p.cpu_used_cores for p in mine)
                memory = system_memory + sum(p.memory_used_bytes for p in mine)
                rows.append(
                    NodeHour(
                        cluster=cluster,
                        node=node,
                        hour=hour,
                        cpu_capacity_cores=float(cores),
                        cpu_used_cores=round(cpu, 4),
                        cpu_used_cores_max=round(cpu * 1.25, 4),
                        memory_capacity_bytes=float(gib * GIB),
                        memory_used_bytes=round(memory),
                        memory_used_bytes_max=round(memory * 1.08),
                        disk_capacity_bytes=float(200 * GIB),
                        disk_used_bytes=round((60 + 40 * rng.random()) * GIB),
                        network_receive_bytes=sum(p.network_receive_bytes or 0 for p in mine),
                        network_transmit_bytes=sum(p.network_transmit_bytes or 0 for p in mine),
                        conditions={
                            "DiskPressure": False,
                            "MemoryPressure": False,
                            "PIDPressure": False,
                            "Ready": True,
                        },
                    )
                )
        return rows

    def namespaces(self, cluster: str, hours: list[dt.datetime]) -> list[NamespaceInfo]:
        replicas = REPLICAS[self._group(cluster)]
        rows = []
        for hour in hours:
            for team in sorted({s.team for s in SERVICES}):
                services = [s for s in SERVICES if s.team == team]
                cpu = sum(self._requests(s.name)[0] for s in services) * replicas
                memory = sum(self._requests(s.name)[1] for s in services) * replicas * GIB
                headroom = QUOTA_HEADROOM.get(team, 1.5)
                rows.append(
                    NamespaceInfo(
                        cluster=cluster,
                        namespace=team,
                        hour=hour,
                        tenant=team,
                        cpu_quota_cores=round(cpu * headroom, 3),
                        memory_quota_bytes=round(memory * headroom),
                    )
                )
        return rows
