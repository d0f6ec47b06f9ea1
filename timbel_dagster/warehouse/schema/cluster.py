"""Warehouse tables of cluster usage and its cost, one row per cluster-hour and object.

Usage columns are hourly aggregates: `*_used_*` is the mean over the hour, `*_max` its peak;
requests and limits are what the Kubernetes objects declared at the end of the hour.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, Timestamps


class ClusterHour(Timestamps):
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str] = mapped_column(String(128))
    hour: Mapped[dt.datetime]  # start of the hour, UTC


class NodeMetric(ClusterHour, Base):
    __tablename__ = "node_metrics"
    __table_args__ = (
        UniqueConstraint("source", "cluster", "node", "hour"),
        Index(None, "cluster", "hour"),
    )

    node: Mapped[str] = mapped_column(String(256))
    cpu_capacity_cores: Mapped[float | None] = mapped_column(Float)
    cpu_used_cores: Mapped[float | None] = mapped_column(Float)
    cpu_used_cores_max: Mapped[float | None] = mapped_column(Float)
    memory_capacity_bytes: Mapped[float | None] = mapped_column(Float)
    memory_used_bytes: Mapped[float | None] = mapped_column(Float)
    memory_used_bytes_max: Mapped[float | None] = mapped_column(Float)
    disk_capacity_bytes: Mapped[float | None] = mapped_column(Float)
    disk_used_bytes: Mapped[float | None] = mapped_column(Float)
    network_receive_bytes: Mapped[float | None] = mapped_column(Float)
    network_transmit_bytes: Mapped[float | None] = mapped_column(Float)
    ready: Mapped[bool | None]
    # Node conditions at the end of the hour, e.g. {"Ready": true, "MemoryPressure": false}.
    conditions: Mapped[dict[str, Any]]


class PodMetric(ClusterHour, Base):
    __tablename__ = "pod_metrics"
    __table_args__ = (
        UniqueConstraint("source", "cluster", "namespace", "pod", "hour"),
        Index(None, "cluster", "hour"),
        Index(None, "cluster", "namespace", "workload", "hour"),
    )

    namespace: Mapped[str] = mapped_column(String(128))
    pod: Mapped[str] = mapped_column(String(256))
    workload: Mapped[str] = mapped_column(String(256))  # owning Deployment/StatefulSet/...
    workload_kind: Mapped[str | None] = mapped_column(String(64))
    node: Mapped[str | None] = mapped_column(String(256))
    phase: Mapped[str | None] = mapped_column(String(16))  # Running Pending Succeeded ...
    cpu_used_cores: Mapped[float] = mapped_column(Float)
    cpu_used_cores_max: Mapped[float] = mapped_column(Float)
    cpu_requested_cores: Mapped[float] = mapped_column(Float)
    cpu_limit_cores: Mapped[float | None] = mapped_column(Float)
    memory_used_bytes: Mapped[float] = mapped_column(Float)
    memory_used_bytes_max: Mapped[float] = mapped_column(Float)
    memory_requested_bytes: Mapped[float] = mapped_column(Float)
    memory_limit_bytes: Mapped[float | None] = mapped_column(Float)
    storage_bytes: Mapped[float] = mapped_column(Float, default=0.0)  # PVC requests mounted
    network_receive_bytes: Mapped[float | None] = mapped_column(Float)
    network_transmit_bytes: Mapped[float | None] = mapped_column(Float)
    restarts: Mapped[int] = mapped_column(Integer, default=0)  # container restarts this hour
    crash_looping: Mapped[bool] = mapped_column(default=False)


class NamespaceUsage(ClusterHour, Base):
    __tablename__ = "namespace_usage"
    __table_args__ = (
        UniqueConstraint("source", "cluster", "namespace", "hour"),
        Index(None, "cluster", "hour"),
    )

    namespace: Mapped[str] = mapped_column(String(128))
    tenant: Mapped[str] = mapped_column(String(128))
    pods: Mapped[int] = mapped_column(Integer)
    cpu_used_cores: Mapped[float] = mapped_column(Float)
    cpu_used_cores_max: Mapped[float] = mapped_column(Float)
    cpu_requested_cores: Mapped[float] = mapped_column(Float)
    cpu_limit_cores: Mapped[float | None] = mapped_column(Float)
    cpu_quota_cores: Mapped[float | None] = mapped_column(Float)  # ResourceQuota hard
    memory_used_bytes: Mapped[float] = mapped_column(Float)
    memory_requested_bytes: Mapped[float] = mapped_column(Float)
    memory_limit_bytes: Mapped[float | None] = mapped_column(Float)
    memory_quota_bytes: Mapped[float | None] = mapped_column(Float)
    storage_bytes: Mapped[float] = mapped_column(Float)
    network_receive_bytes: Mapped[float | None] = mapped_column(Float)
    network_transmit_bytes: Mapped[float | None] = mapped_column(Float)


class WorkloadStatus(ClusterHour, Base):
    __tablename__ = "workload_status"
    __table_args__ = (
        UniqueConstraint("source", "cluster", "namespace", "workload", "hour"),
        Index(None, "cluster", "hour"),
    )

    namespace: Mapped[str] = mapped_column(String(128))
    workload: Mapped[str] = mapped_column(String(256))
    workload_kind: Mapped[str | None] = mapped_column(String(64))
    pods: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer)
    unknown: Mapped[int] = mapped_column(Integer)
    restarts: Mapped[int] = mapped_column(Integer)
    crash_looping_pods: Mapped[int] = mapped_column(Integer)
    nodes_not_ready: Mapped[int] = mapped_column(Integer)  # nodes its pods ran on
    healthy: Mapped[bool]


class CostAllocation(ClusterHour, Base):
    __tablename__ = "cost_allocations"
    __table_args__ = (
        UniqueConstraint("source", "cluster", "namespace", "workload", "hour"),
        Index(None, "cluster", "hour"),
        Index(None, "tenant", "hour"),
    )

    namespace: Mapped[str] = mapped_column(String(128))
    workload: Mapped[str] = mapped_column(String(256))
    tenant: Mapped[str] = mapped_column(String(128))
    cpu_charged_cores: Mapped[float] = mapped_column(Float)
    memory_charged_gib: Mapped[float] = mapped_column(Float)
    storage_gib: Mapped[float] = mapped_column(Float)
    cpu_cost: Mapped[float] = mapped_column(Float)
    memory_cost: Mapped[float] = mapped_column(Float)
    storage_cost: Mapped[float] = mapped_column(Float)
    total_cost: Mapped[float] = mapped_column(Float)


class ClusterCost(ClusterHour, Base):
    """What a cluster's nodes cost in an hour, how much of it workloads were charged, and
    the idle rest."""

    __tablename__ = "cluster_costs"
    __table_args__ = (UniqueConstraint("source", "cluster", "hour"),)

    capacity_cost: Mapped[float] = mapped_column(Float)
    allocated_cost: Mapped[float] = mapped_column(Float)
    idle_cost: Mapped[float] = mapped_column(Float)


class RightsizingSuggestion(Timestamps, Base):
    """The latest rightsizing suggestion per workload, from its trailing usage window."""

    __tablename__ = "rightsizing_suggestions"
    __table_args__ = (UniqueConstraint("source", "cluster", "namespace", "workload"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(128))
    workload: Mapped[str] = mapped_column(String(256))
    window_start: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime]
    hours: Mapped[int] = mapped_column(Integer)
    cpu_requested: Mapped[float] = mapped_column(Float)
    cpu_p95: Mapped[float] = mapped_column(Float)
    cpu_recommended: Mapped[float] = mapped_column(Float)
    memory_gib_requested: Mapped[float] = mapped_column(Float)
    memory_gib_p95: Mapped[float] = mapped_column(Float)
    memory_gib_recommended: Mapped[float] = mapped_column(Float)
    saving_per_hour: Mapped[float] = mapped_column(Float)


class MetricSeries(Base):
    """One Prometheus series exported into the warehouse (`timbel metrics export`)."""

    __tablename__ = "metric_series"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # from name and labels
    name: Mapped[str] = mapped_column(String(256), index=True)
    labels: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]


class MetricSample(Base):
    __tablename__ = "metric_samples"

    series_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("metric_series.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[dt.datetime] = mapped_column(primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)  # NaN is NULL on SQLite
