"""`cluster/*` usage assets: nodes and pods from the metrics source, and the namespace and
workload summaries derived from them, per cluster and hour.

Each asset reads everything for its partitions first and writes in one transaction, so a
source that fails (Prometheus down, a refused query) leaves nothing half-written.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
from typing import Any

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table, upsert_metadata
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.partitions import CLUSTER_HOURLY, SINGLE_RUN, cluster_hours
from timbel_dagster.records.cluster_metrics import HOUR
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.store.cluster_usage import (
    NAMESPACE_KEY,
    NODE_KEY,
    POD_KEY,
    WORKLOAD_KEY,
    namespace_rows,
    node_rows,
    pod_rows,
    stored_rows,
    workload_rows,
)
from timbel_dagster.warehouse.store.upsert import bulk_upsert

GROUP = "cluster"
CLUSTER_ASSET: dict[str, Any] = {
    "group_name": GROUP,
    "owners": OWNERS,
    "partitions_def": CLUSTER_HOURLY,
    "backfill_policy": SINGLE_RUN,
}


def store_rows(warehouse: WarehouseResource, table: str, rows: list, key: tuple) -> Any:
    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    with warehouse.begin() as connection:
        return bulk_upsert(connection, Base.metadata.tables[table], rows, key)


def stored_for(warehouse: WarehouseResource, table: str, source: str, spans: dict) -> list[dict]:
    rows: list[dict] = []
    with warehouse.engine().connect() as connection:
        for cluster, hours in spans.items():
            wanted = set(hours)
            found = stored_rows(connection, table, source, cluster, hours[0], hours[-1] + HOUR)
            rows += [r for r in found if r["hour"] in wanted]
    return rows


def _span_text(spans: dict) -> str:
    return "; ".join(
        f"{cluster} {hours[0]:%Y-%m-%d %H:00}..{hours[-1]:%H:00} ({len(hours)} h)"
        for cluster, hours in spans.items()
    )


def _read_and_store(context, warehouse, sources, table, key, method, to_rows):
    """Read every cluster's hours of the run from the metrics source (`method`: nodes or
    pods), then store them all in one transaction."""
    source = sources.metrics_source()
    spans = cluster_hours(context.partition_keys)
    rows = []
    for cluster, hours in spans.items():
        rows += to_rows(source.name, getattr(source, method)(cluster, hours))
    for notice in source.notices:
        context.log.warning(notice)
    result = store_rows(warehouse, table, rows, key)
    context.log.info(f"{len(rows)} {method[:-1]}-hours from {source.name}: {_span_text(spans)}")
    return source, rows, result


@dg.asset(
    key=["cluster", "node_metrics"],
    kinds={"prometheus", "kubernetes", "sql"},
    description="One row per node and hour: CPU, memory, disk and network used against "
    "capacity, and the node's conditions.",
    **CLUSTER_ASSET,
)
def node_metrics(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    source, rows, result = _read_and_store(
        context, warehouse, sources, "node_metrics", NODE_KEY, "nodes", node_rows
    )
    per_cluster = _cluster_totals(rows, ("cpu_used_cores", "cpu_capacity_cores"))
    return dg.MaterializeResult(
        metadata=upsert_metadata(result, source.name)
        | {
            "nodes": dg.MetadataValue.int(len({(r["cluster"], r["node"]) for r in rows})),
            "nodes_not_ready": dg.MetadataValue.int(sum(r["ready"] is False for r in rows)),
            "cpu_by_cluster": markdown_table(
                per_cluster, ["cluster", "cpu_used_cores", "cpu_capacity_cores"]
            ),
        }
    )


def _cluster_totals(rows: list[dict], columns: tuple[str, ...]) -> list[dict]:
    """Per cluster, the hourly mean of each column's sum over its objects."""
    totals: dict[str, dict[str, float]] = {}
    hours: dict[str, set] = {}
    for row in rows:
        into = totals.setdefault(row["cluster"], dict.fromkeys(columns, 0.0))
        hours.setdefault(row["cluster"], set()).add(row["hour"])
        for column in columns:
            into[column] += row[column] or 0.0
    return [
        {"cluster": cluster} | {c: v / len(hours[cluster]) for c, v in values.items()}
        for cluster, values in sorted(totals.items())
    ]


@dg.asset(
    key=["cluster", "pod_metrics"],
    kinds={"prometheus", "kubernetes", "sql"},
    description="One row per pod and hour: CPU, memory, storage and network used, requested "
    "and limited; phase, restarts and crash loops; the workload that owns it.",
    **CLUSTER_ASSET,
)
def pod_metrics(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    source, rows, result = _read_and_store(
        context, warehouse, sources, "pod_metrics", POD_KEY, "pods", pod_rows
    )
    return dg.MaterializeResult(
        metadata=upsert_metadata(result, source.name)
        | {
            "pods": dg.MetadataValue.int(len({(r["cluster"], r["pod"]) for r in rows})),
            "restarts": dg.MetadataValue.int(sum(r["restarts"] for r in rows)),
            "crash_looping_pod_hours": dg.MetadataValue.int(
                sum(bool(r["crash_looping"]) for r in rows)
            ),
        }
    )


@dg.asset(
    key=["cluster", "namespace_usage"],
    kinds={"prometheus", "sql"},
    deps=[pod_metrics],
    description="One row per namespace and hour: usage, requests and limits of its pods "
    "against its ResourceQuota, and the tenant it belongs to.",
    **CLUSTER_ASSET,
)
def namespace_usage(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    source = sources.metrics_source()
    spans = cluster_hours(context.partition_keys)
    infos = [info for c, hours in spans.items() for info in source.namespaces(c, hours)]
    for notice in source.notices:
        context.log.warning(notice)
    rows = namespace_rows(
        source.name, stored_for(warehouse, "pod_metrics", source.name, spans), infos
    )
    result = store_rows(warehouse, "namespace_usage", rows, NAMESPACE_KEY)
    near_quota = [
        r
        for r in rows
        if r["cpu_quota_cores"] and r["cpu_used_cores_max"] >= 0.9 * r["cpu_quota_cores"]
    ]
    top = sorted(rows, key=lambda r: r["cpu_used_cores"], reverse=True)
    return dg.MaterializeResult(
        metadata=upsert_metadata(result, source.name)
        | {
            "namespace_hours_near_cpu_quota": dg.MetadataValue.int(len(near_quota)),
            "busiest": markdown_table(
                top, ["cluster", "namespace", "hour", "cpu_used_cores", "cpu_requested_cores"]
            ),
        }
    )


@dg.asset(
    key=["cluster", "workload_status"],
    kinds={"kubernetes", "sql"},
    deps=[pod_metrics, node_metrics],
    description="One row per workload and hour: pod phases, restarts, crash-looping pods and "
    "nodes not Ready under it.",
    **CLUSTER_ASSET,
)
def workload_status(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    name = sources.metrics_source().name
    spans = cluster_hours(context.partition_keys)
    rows = workload_rows(
        name,
        stored_for(warehouse, "pod_metrics", name, spans),
        stored_for(warehouse, "node_metrics", name, spans),
    )
    result = store_rows(warehouse, "workload_status", rows, WORKLOAD_KEY)
    unhealthy = [r for r in rows if not r["healthy"]]
    return dg.MaterializeResult(
        metadata=upsert_metadata(result, name)
        | {
            "unhealthy_workload_hours": dg.MetadataValue.int(len(unhealthy)),
            "unhealthy": markdown_table(
                unhealthy,
                ["cluster", "namespace", "workload", "hour", "crash_looping_pods", "restarts"],
            ),
        }
    )
