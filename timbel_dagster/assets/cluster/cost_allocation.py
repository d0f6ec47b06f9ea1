"""`cluster/cost_allocation`: what each workload, namespace and tenant cost per hour, the
clusters' idle cost, and rightsizing suggestions from trailing usage."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.assets import plots
from timbel_dagster.assets.cluster import cost
from timbel_dagster.assets.cluster.cost import PriceTable
from timbel_dagster.assets.cluster.usage import (
    CLUSTER_ASSET,
    namespace_usage,
    node_metrics,
    pod_metrics,
    stored_for,
)
from timbel_dagster.assets.ingestion import markdown_table, upsert_metadata
from timbel_dagster.assets.metadata import rounded
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.partitions import cluster_hours
from timbel_dagster.records.cluster_metrics import HOUR
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.cluster_usage import stored_rows
from timbel_dagster.warehouse.store.upsert import bulk_upsert


class CostConfig(dg.Config):
    """Prices in USD per unit-hour; unset, TIMBEL_PRICE_* (OpenCost's defaults)."""

    cpu_core_hour: float | None = None
    memory_gib_hour: float | None = None
    storage_gib_hour: float | None = None
    rightsizing_days: int = 7  # the usage window a suggestion is computed from
    percentile: float = 0.95
    headroom: float = 0.15


def prices_for(config: CostConfig):
    settings = get_settings()
    return PriceTable(
        cpu_core_hour=config.cpu_core_hour
        if config.cpu_core_hour is not None
        else settings.timbel_price_cpu_core_hour,
        memory_gib_hour=config.memory_gib_hour
        if config.memory_gib_hour is not None
        else settings.timbel_price_memory_gib_hour,
        storage_gib_hour=config.storage_gib_hour
        if config.storage_gib_hour is not None
        else settings.timbel_price_storage_gib_hour,
    )


@dg.asset(
    key=["cluster", "cost_allocation"],
    kinds={"pandas", "sql"},
    deps=[pod_metrics, node_metrics, namespace_usage],
    description="One row per workload and hour: CPU, memory and storage charged (the larger "
    "of request and usage) and their cost, with its namespace and tenant; plus each cluster's "
    "idle cost and rightsizing suggestions.",
    **CLUSTER_ASSET,
)
def cost_allocation(
    context: dg.AssetExecutionContext,
    config: CostConfig,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    if not 0 < config.percentile <= 1 or config.headroom < 0 or config.rightsizing_days < 1:
        raise ValueError(
            "cost config: percentile must be in (0, 1], headroom >= 0, rightsizing_days >= 1"
        )
    prices = prices_for(config)
    name = sources.metrics_source().name
    spans = cluster_hours(context.partition_keys)
    tenants = {
        (r["cluster"], r["namespace"], r["hour"]): r["tenant"]
        for r in stored_for(warehouse, "namespace_usage", name, spans)
    }
    allocated = cost.allocate(
        cost.workload_usage(stored_for(warehouse, "pod_metrics", name, spans)), prices
    )
    idle = cost.idle_cost(
        allocated, cost.node_capacity(stored_for(warehouse, "node_metrics", name, spans)), prices
    )
    suggestions = []
    with warehouse.engine().connect() as connection:
        for cluster, hours in spans.items():
            end = hours[-1] + HOUR
            start = end - dt.timedelta(days=config.rightsizing_days)
            trailing = cost.workload_usage(
                stored_rows(connection, "pod_metrics", name, cluster, start, end)
            )
            if trailing.empty:
                continue
            for row in cost.rightsizing(
                trailing, prices, config.percentile, config.headroom
            ).to_dict("records"):
                suggestions.append(
                    {
                        "id": stable_id("rightsizing_suggestions", name, *_workload(row)),
                        "source": name,
                        "window_start": start,
                        "window_end": end,
                        **{k: row[k] for k in _SUGGESTION_COLUMNS},
                        "hours": int(row["hours"]),
                    }
                )
    allocation_rows = [
        {
            "id": stable_id("cost_allocations", name, *_workload(r), r["hour"]),
            "source": name,
            "cluster": r["cluster"],
            "namespace": r["namespace"],
            "workload": r["workload"],
            "hour": r["hour"],
            "tenant": tenants.get((r["cluster"], r["namespace"], r["hour"]), r["namespace"]),
            "cpu_charged_cores": r["cpu_charged"],
            "memory_charged_gib": r["memory_gib_charged"],
            "storage_gib": r["storage_gib"],
            "cpu_cost": r["cpu_cost"],
            "memory_cost": r["memory_cost"],
            "storage_cost": r["storage_cost"],
            "total_cost": r["total_cost"],
        }
        for r in allocated.to_dict("records")
    ]
    cluster_rows = [
        {
            "id": stable_id("cluster_costs", name, r["cluster"], r["hour"]),
            "source": name,
            **{
                k: r[k] for k in ("cluster", "hour", "capacity_cost", "allocated_cost", "idle_cost")
            },
        }
        for r in idle.to_dict("records")
    ]
    results = _store_all(warehouse, allocation_rows, cluster_rows, suggestions)
    # float start: with no rows (no pods, or no node capacity) the metadata is still a float
    total = sum((r["total_cost"] for r in allocation_rows), 0.0)
    idle_total = sum((r["idle_cost"] for r in cluster_rows), 0.0)
    context.log.info(f"allocated {total:.4f} USD, idle {idle_total:.4f} USD")
    by_namespace = _by(allocation_rows, ("cluster", "namespace"))
    metadata = upsert_metadata(results["cost_allocations"], name) | {
        "allocated_usd": dg.MetadataValue.float(total),
        "idle_usd": dg.MetadataValue.float(idle_total),
        "cost_by_namespace": markdown_table(by_namespace, ["cluster", "namespace", "total_cost"]),
        "rightsizing": markdown_table(
            sorted(suggestions, key=lambda s: s["saving_per_hour"], reverse=True),
            ["cluster", "namespace", "workload", "cpu_requested", "cpu_p95", "saving_per_hour"],
            limit=8,
        ),
        "price_cpu_core_hour": dg.MetadataValue.float(prices.cpu_core_hour),
        "price_memory_gib_hour": dg.MetadataValue.float(prices.memory_gib_hour),
        "price_storage_gib_hour": dg.MetadataValue.float(prices.storage_gib_hour),
    }
    trend = plots.cost_by_namespace(_cost_trend(warehouse, name, spans)) if plotted(spans) else None
    if trend is not None:
        metadata["cost_by_namespace_plot"] = trend
    return dg.MaterializeResult(metadata=rounded(metadata))


# The cost plot shows the week up to the run's last hour, whatever range the run covers.
TREND_DAYS = 7


def plotted(spans: dict[str, list[dt.datetime]]) -> bool:
    """Whether a run draws the cost plot: one that covers several hours (a backfill, the demo,
    `timbel metrics collect`), or the hourly schedule's run of a day's last hour. A plot is
    about 40 KB of event log; one per hourly run would be a megabyte a day."""
    hours = {hour for per_cluster in spans.values() for hour in per_cluster}
    return len(hours) > 1 or any(hour.hour == 23 for hour in hours)


def _cost_trend(warehouse: WarehouseResource, name: str, spans: dict) -> list[dict]:
    """Cost per hour and namespace (all clusters) in the `TREND_DAYS` up to the last hour of
    `spans`, as stored (this run's rows included)."""
    from sqlalchemy import func, select

    # lazy: warehouse.schema.cluster loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.cluster import CostAllocation as C

    end = max(hours[-1] for hours in spans.values()) + HOUR
    start = end - dt.timedelta(days=TREND_DAYS)
    with warehouse.engine().connect() as connection:
        found = connection.execute(
            select(C.hour, C.namespace, func.sum(C.total_cost))
            .where(C.source == name, C.hour >= start, C.hour < end)
            .group_by(C.hour, C.namespace)
        ).all()
    return [{"hour": h, "namespace": n, "total_cost": float(c or 0)} for h, n, c in found]


_SUGGESTION_COLUMNS = (
    "cluster",
    "namespace",
    "workload",
    "cpu_requested",
    "cpu_p95",
    "cpu_recommended",
    "memory_gib_requested",
    "memory_gib_p95",
    "memory_gib_recommended",
    "saving_per_hour",
)


def _workload(row: dict) -> tuple[str, str, str]:
    return row["cluster"], row["namespace"], row["workload"]


def _by(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    totals: dict[tuple, float] = {}
    for row in rows:
        at = tuple(row[k] for k in keys)
        totals[at] = totals.get(at, 0.0) + row["total_cost"]
    ordered = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return [dict(zip(keys, at, strict=True)) | {"total_cost": v} for at, v in ordered]


def _store_all(warehouse: WarehouseResource, allocations, clusters, suggestions) -> dict:
    """The three tables in one transaction: a cost run is stored whole or not at all."""
    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    tables = Base.metadata.tables
    with warehouse.begin() as connection:
        return {
            "cost_allocations": bulk_upsert(
                connection,
                tables["cost_allocations"],
                allocations,
                ("source", "cluster", "namespace", "workload", "hour"),
            ),
            "cluster_costs": bulk_upsert(
                connection, tables["cluster_costs"], clusters, ("source", "cluster", "hour")
            ),
            "rightsizing_suggestions": bulk_upsert(
                connection,
                tables["rightsizing_suggestions"],
                suggestions,
                ("source", "cluster", "namespace", "workload"),
            ),
        }
