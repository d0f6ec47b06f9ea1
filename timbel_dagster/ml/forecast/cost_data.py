"""The hourly usage-and-cost frame the cost forecaster reads, from the warehouse.

One row per source, cluster, namespace (and workload, when asked) and hour, in the units the
forecaster and the suggestions use: CPU cores, GiB, and the USD stored in
`cost_allocations` (NaN where no cost was allocated for that hour). Also the frame's
reduction to the three forecast metrics per namespace and hour (`namespace_hours`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    import pandas as pd
    from sqlalchemy.engine import Connection

GIB = 1024**3
USAGE_FRAME_COLUMNS = (
    "source",
    "cluster",
    "namespace",
    "tenant",
    "hour",
    "cpu_used_cores",
    "cpu_requested_cores",
    "memory_gib_used",
    "memory_gib_requested",
    "storage_gib",
    "cost_usd",
)
METRICS = ("cpu_cores", "memory_gib", "cost_usd")
REQUIRED = USAGE_FRAME_COLUMNS[1:-1]  # source and cost_usd may be absent


class Prices(Protocol):
    """USD per unit-hour, e.g. `assets.cluster.cost.PriceTable`."""

    cpu_core_hour: float
    memory_gib_hour: float
    storage_gib_hour: float


def load_usage_frame(
    connection: Connection,
    since: dt.datetime | None = None,
    source: str | None = None,
    by_workload: bool = False,
) -> pd.DataFrame:
    """Hourly usage and allocated cost per namespace (or per workload).

    Args:
        connection: a warehouse connection (SQLite or PostgreSQL).
        since: only hours at or after this (timezone-aware) moment.
        source: only this metrics source (`sample`, `kube-prometheus`, ...).
        by_workload: one row per workload from `pod_metrics` (with a `workload` column)
            instead of per namespace from `namespace_usage`.

    Returns:
        `USAGE_FRAME_COLUMNS` (plus `workload`), `hour` as UTC timestamps, sorted by
        source, cluster, namespace, (workload,) hour. Empty with these columns when nothing
        is stored.
    """
    import pandas as pd
    from sqlalchemy import and_, func, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Base

    tables = Base.metadata.tables
    usage = tables["pod_metrics" if by_workload else "namespace_usage"]
    namespaces, cost = tables["namespace_usage"], tables["cost_allocations"]
    keys = ["source", "cluster", "namespace", *(["workload"] if by_workload else []), "hour"]

    def within(query: Any, table: Any) -> Any:
        if since is not None:
            query = query.where(table.c.hour >= since)
        return query if source is None else query.where(table.c.source == source)

    costs = within(
        select(*(cost.c[k] for k in keys), func.sum(cost.c.total_cost).label("cost_usd")), cost
    ).group_by(*(cost.c[k] for k in keys))
    costs = costs.subquery()
    measures = {  # memory and storage in bytes until divided by GIB below
        "cpu_used_cores": usage.c.cpu_used_cores,
        "cpu_requested_cores": usage.c.cpu_requested_cores,
        "memory_gib_used": usage.c.memory_used_bytes,
        "memory_gib_requested": usage.c.memory_requested_bytes,
        "storage_gib": usage.c.storage_bytes,
    }
    if by_workload:
        # A workload's pods add up; its tenant is its namespace's.
        summed = [func.sum(column).label(name) for name, column in measures.items()]
        rows = within(select(*(usage.c[k] for k in keys), *summed), usage)
        rows = rows.group_by(*(usage.c[k] for k in keys)).subquery()
        on = and_(
            *(rows.c[k] == namespaces.c[k] for k in ("source", "cluster", "namespace", "hour"))
        )
        joined = rows.outerjoin(namespaces, on)
        tenant = func.coalesce(namespaces.c.tenant, rows.c.namespace).label("tenant")
    else:
        labelled = [column.label(name) for name, column in measures.items()]
        rows = within(select(*(usage.c[k] for k in keys), usage.c.tenant, *labelled), usage)
        rows = rows.subquery()
        joined, tenant = rows, rows.c.tenant
    query = (
        select(*(rows.c[k] for k in keys), tenant, *(rows.c[n] for n in measures), costs.c.cost_usd)
        .select_from(joined.outerjoin(costs, and_(*(rows.c[k] == costs.c[k] for k in keys))))
        .order_by(*(rows.c[k] for k in keys))
    )
    frame = pd.DataFrame(connection.execute(query).mappings().all())
    columns = [*USAGE_FRAME_COLUMNS, *(["workload"] if by_workload else [])]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for name in ("memory_gib_used", "memory_gib_requested", "storage_gib"):
        frame[name] = frame[name].astype(float) / GIB
    frame["hour"] = pd.to_datetime(frame["hour"], utc=True)
    frame["cost_usd"] = frame["cost_usd"].astype(float)
    return frame[columns].reset_index(drop=True)


def require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"usage frame lacks column(s) {', '.join(missing)}")


def charged_cost(frame: pd.DataFrame, prices: Prices) -> pd.Series:
    """Per row: the stored `cost_usd` where present, else max(request, usage) priced."""
    priced = (
        frame[["cpu_used_cores", "cpu_requested_cores"]].max(axis=1) * prices.cpu_core_hour
        + frame[["memory_gib_used", "memory_gib_requested"]].max(axis=1) * prices.memory_gib_hour
        + frame["storage_gib"] * prices.storage_gib_hour
    )
    if "cost_usd" not in frame.columns:
        return priced
    return frame["cost_usd"].astype(float).fillna(priced)


def namespace_hours(frame: pd.DataFrame, prices: Prices) -> pd.DataFrame:
    """The frame per cluster, namespace and hour (workloads summed), with the three
    metrics, checked for one source and the columns it needs."""
    import pandas as pd

    require_columns(frame, REQUIRED)
    if "source" in frame.columns and frame["source"].nunique() > 1:
        sources = ", ".join(sorted(frame["source"].unique()))
        raise ValueError(f"usage frame mixes sources {sources}: pass one source")
    rows = frame.assign(
        hour=pd.to_datetime(frame["hour"], utc=True),
        cpu_cores=frame["cpu_used_cores"],
        memory_gib=frame["memory_gib_used"],
        cost_usd=charged_cost(frame, prices),
    )
    keys = ["cluster", "namespace", "hour"]
    summed = rows.groupby(keys, as_index=False)[list(METRICS)].sum()
    tenants = rows.groupby(keys, as_index=False)["tenant"].first()
    return summed.merge(tenants, on=keys)
