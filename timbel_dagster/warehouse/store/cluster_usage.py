"""Cluster usage records into warehouse rows, and the namespace and workload summaries
derived from pod rows. Plain functions: the cluster assets and the tests call them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.schema.ids import stable_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.records.cluster_metrics import NamespaceInfo, NodeHour, PodHour

NODE_KEY = ("source", "cluster", "node", "hour")
POD_KEY = ("source", "cluster", "namespace", "pod", "hour")
NAMESPACE_KEY = ("source", "cluster", "namespace", "hour")
WORKLOAD_KEY = ("source", "cluster", "namespace", "workload", "hour")
PHASES = ("Running", "Pending", "Failed", "Succeeded", "Unknown")


def _row(table: str, key: Sequence[str], values: dict[str, Any]) -> dict[str, Any]:
    return {"id": stable_id(table, *(values[k] for k in key)), **values}


def node_rows(source: str, nodes: Iterable[NodeHour]) -> list[dict[str, Any]]:
    rows = []
    for node in nodes:
        values = {"source": source, **dataclasses.asdict(node), "ready": node.ready}
        rows.append(_row("node_metrics", NODE_KEY, values))
    return rows


def pod_rows(source: str, pods: Iterable[PodHour]) -> list[dict[str, Any]]:
    return [
        _row("pod_metrics", POD_KEY, {"source": source, **dataclasses.asdict(pod)}) for pod in pods
    ]


def _total(rows: list[dict[str, Any]], column: str) -> float | None:
    values = [r[column] for r in rows if r[column] is not None]
    return sum(values) if values else None


def namespace_rows(
    source: str, pods: Sequence[dict[str, Any]], infos: Iterable[NamespaceInfo]
) -> list[dict[str, Any]]:
    """One row per cluster, namespace and hour: its pods' usage added up, beside its quota.
    Namespaces without pods that hour still get a row when the source knows them."""
    grouped: dict[tuple[str, str, Any], list[dict[str, Any]]] = defaultdict(list)
    for pod in pods:
        grouped[pod["cluster"], pod["namespace"], pod["hour"]].append(pod)
    known = {(i.cluster, i.namespace, i.hour): i for i in infos}
    rows = []
    for at in sorted(set(grouped) | set(known)):
        members, info = grouped.get(at, []), known.get(at)
        cluster, namespace, hour = at
        values = {
            "source": source,
            "cluster": cluster,
            "namespace": namespace,
            "hour": hour,
            "tenant": info.tenant if info else namespace,
            "pods": len(members),
            "cpu_used_cores": _total(members, "cpu_used_cores") or 0.0,
            # Pods peak at different moments: the sum of peaks bounds the namespace's peak.
            "cpu_used_cores_max": _total(members, "cpu_used_cores_max") or 0.0,
            "cpu_requested_cores": _total(members, "cpu_requested_cores") or 0.0,
            "cpu_limit_cores": _total(members, "cpu_limit_cores"),
            "cpu_quota_cores": info.cpu_quota_cores if info else None,
            "memory_used_bytes": _total(members, "memory_used_bytes") or 0.0,
            "memory_requested_bytes": _total(members, "memory_requested_bytes") or 0.0,
            "memory_limit_bytes": _total(members, "memory_limit_bytes"),
            "memory_quota_bytes": info.memory_quota_bytes if info else None,
            "storage_bytes": _total(members, "storage_bytes") or 0.0,
            "network_receive_bytes": _total(members, "network_receive_bytes"),
            "network_transmit_bytes": _total(members, "network_transmit_bytes"),
        }
        rows.append(_row("namespace_usage", NAMESPACE_KEY, values))
    return rows


def workload_rows(
    source: str, pods: Sequence[dict[str, Any]], nodes: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per workload and hour: pod phases, restarts, crash loops, and how many of the
    nodes its pods ran on were not Ready. Healthy means every pod Running or Succeeded, none
    crash-looping, and no pod on a node that is not Ready."""
    not_ready = {(n["cluster"], n["node"], n["hour"]) for n in nodes if n.get("ready") is False}
    grouped: dict[tuple[str, str, str, Any], list[dict[str, Any]]] = defaultdict(list)
    for pod in pods:
        grouped[pod["cluster"], pod["namespace"], pod["workload"], pod["hour"]].append(pod)
    rows = []
    for (cluster, namespace, workload, hour), members in sorted(grouped.items()):
        phases = {phase: sum(p["phase"] == phase for p in members) for phase in PHASES}
        phases["Unknown"] += sum(p["phase"] not in PHASES for p in members)
        crash = sum(bool(p["crash_looping"]) for p in members)
        bad_nodes = {
            p["node"] for p in members if (cluster, p["node"], hour) in not_ready and p["node"]
        }
        values = {
            "source": source,
            "cluster": cluster,
            "namespace": namespace,
            "workload": workload,
            "hour": hour,
            "workload_kind": members[0]["workload_kind"],
            "pods": len(members),
            "running": phases["Running"],
            "pending": phases["Pending"],
            "failed": phases["Failed"],
            "succeeded": phases["Succeeded"],
            "unknown": phases["Unknown"],
            "restarts": sum(p["restarts"] for p in members),
            "crash_looping_pods": crash,
            "nodes_not_ready": len(bad_nodes),
            "healthy": crash == 0
            and not bad_nodes
            and phases["Running"] + phases["Succeeded"] == len(members),
        }
        rows.append(_row("workload_status", WORKLOAD_KEY, values))
    return rows


def stored_rows(
    connection: Connection,
    table: str,
    source: str,
    cluster: str,
    start: dt.datetime,
    end: dt.datetime,
) -> list[dict[str, Any]]:
    """Rows of a cluster-hour table for one cluster and source with start <= hour < end."""
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    model = Base.metadata.tables[table]
    query = (
        select(model)
        .where(model.c.source == source, model.c.cluster == cluster)
        .where(model.c.hour >= start, model.c.hour < end)
        .order_by(model.c.hour)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def usage_report(
    connection: Connection,
    source: str,
    clusters: list[str],
    start: dt.datetime,
    end: dt.datetime,
) -> list[dict[str, Any]]:
    """Per cluster and namespace over [start, end): mean CPU cores and memory GiB used and
    requested, and the cost allocated to it (USD), most expensive first."""
    from sqlalchemy import func, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    usage = Base.metadata.tables["namespace_usage"]
    cost = Base.metadata.tables["cost_allocations"]
    costs = {
        (row.cluster, row.namespace): row.total
        for row in connection.execute(
            select(cost.c.cluster, cost.c.namespace, func.sum(cost.c.total_cost).label("total"))
            .where(cost.c.source == source, cost.c.cluster.in_(clusters))
            .where(cost.c.hour >= start, cost.c.hour < end)
            .group_by(cost.c.cluster, cost.c.namespace)
        )
    }
    rows = connection.execute(
        select(
            usage.c.cluster,
            usage.c.namespace,
            func.max(usage.c.tenant).label("tenant"),
            func.count().label("hours"),
            func.avg(usage.c.cpu_used_cores).label("cpu"),
            func.avg(usage.c.cpu_requested_cores).label("cpu_requested"),
            func.avg(usage.c.memory_used_bytes).label("memory"),
            func.avg(usage.c.memory_requested_bytes).label("memory_requested"),
        )
        .where(usage.c.source == source, usage.c.cluster.in_(clusters))
        .where(usage.c.hour >= start, usage.c.hour < end)
        .group_by(usage.c.cluster, usage.c.namespace)
    )
    gib = 1024**3
    report = [
        {
            "cluster": row.cluster,
            "namespace": row.namespace,
            "tenant": row.tenant,
            "hours": row.hours,
            "cpu_cores_used": round(row.cpu or 0.0, 3),
            "cpu_cores_requested": round(row.cpu_requested or 0.0, 3),
            "memory_gib_used": round((row.memory or 0.0) / gib, 3),
            "memory_gib_requested": round((row.memory_requested or 0.0) / gib, 3),
            "cost_usd": round(costs.get((row.cluster, row.namespace), 0.0), 4),
        }
        for row in rows
    ]
    return sorted(report, key=lambda r: (-r["cost_usd"], r["cluster"], r["namespace"]))
