"""Monthly usage and cost per tenant, from what the `cluster/cost_allocation` asset stored.

Cost comes from `cost_allocations` (one row per workload and hour, with its tenant), usage
from `namespace_usage` (one row per namespace and hour, its mean usage over the hour), so a
sum of rows is core-hours and byte-hours. Rows stay apart per source, so sample data and
a real cluster's data are never added together. Months are calendar months in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.read.scope import tenant_visible
from timbel_dagster.warehouse.schema.models import Base

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

GIB = 1024**3
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_range(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a `YYYY-MM` month in UTC.

    Raises:
        ValueError: not a month like 2026-10.
    """
    match = _MONTH.fullmatch(month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month must be YYYY-MM, like 2026-10, not {month!r}")
    year, number = int(match.group(1)), int(match.group(2))
    start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def _month_of(connection: Connection, column: Any) -> Any:
    from sqlalchemy import func

    if connection.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)  # SQLite stores naive UTC


def _grouped(
    connection: Connection,
    table: Any,
    sums: dict[str, Any],
    month: str | None,
    source: str | None,
    tenant: str | None = None,
    tenants: tuple[str, ...] | None = None,
) -> dict[tuple[str, str, str], dict[str, float]]:
    from sqlalchemy import func, select

    bucket = _month_of(connection, table.c.hour).label("month")
    query = select(
        bucket, table.c.source, table.c.tenant, *(func.sum(v).label(k) for k, v in sums.items())
    ).group_by(bucket, table.c.source, table.c.tenant)
    if month:
        start, end = month_range(month)
        query = query.where(table.c.hour >= start, table.c.hour < end)
    if source:
        query = query.where(table.c.source == source)
    if tenant:
        query = query.where(table.c.tenant == tenant)
    query = query.where(tenant_visible(table.c.tenant, tenants))
    return {
        (row.month, row.source, row.tenant): {k: float(getattr(row, k) or 0.0) for k in sums}
        for row in connection.execute(query)
    }


def monthly_report(
    connection: Connection,
    month: str | None = None,
    source: str | None = None,
    tenant: str | None = None,
    tenants: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Usage and cost per month, source and tenant; every month when `month` is None,
    only `tenant` when given, and only the tenants in `tenants` unless it is None (the
    caller's tenant scope: `identity.scope.visible_tenants`).

    Each row: `month`, `tenant`, `source`, `managed` (a provisioned Timbel tenant),
    `cost_usd` and its `cpu_cost_usd`, `memory_cost_usd`, `storage_cost_usd`,
    `cpu_core_hours` and `memory_gib_hours` used, and `cpu_charged_core_hours` and
    `memory_charged_gib_hours` (the larger of request and usage, what was priced).
    Sorted by month, then cost, most expensive first. Empty when nothing is stored.
    """
    from sqlalchemy import select

    cost = Base.metadata.tables["cost_allocations"]
    usage = Base.metadata.tables["namespace_usage"]
    provisioned = Base.metadata.tables["tenants"]
    costs = _grouped(
        connection,
        cost,
        {
            "total": cost.c.total_cost,
            "cpu": cost.c.cpu_cost,
            "memory": cost.c.memory_cost,
            "storage": cost.c.storage_cost,
            "cpu_charged": cost.c.cpu_charged_cores,
            "memory_charged": cost.c.memory_charged_gib,
        },
        month,
        source,
        tenant,
        tenants,
    )
    used = _grouped(
        connection,
        usage,
        {"cpu": usage.c.cpu_used_cores, "memory": usage.c.memory_used_bytes},
        month,
        source,
        tenant,
        tenants,
    )
    managed = set(
        connection.execute(select(provisioned.c.name).where(provisioned.c.status == "provisioned"))
        .scalars()
        .all()
    )
    rows = []
    for key in sorted(set(costs) | set(used)):
        spent, consumed = costs.get(key, {}), used.get(key, {})
        rows.append(
            {
                "month": key[0],
                "tenant": key[2],
                "source": key[1],
                "managed": key[2] in managed,
                "cost_usd": round(spent.get("total", 0.0), 4),
                "cpu_cost_usd": round(spent.get("cpu", 0.0), 4),
                "memory_cost_usd": round(spent.get("memory", 0.0), 4),
                "storage_cost_usd": round(spent.get("storage", 0.0), 4),
                "cpu_core_hours": round(consumed.get("cpu", 0.0), 3),
                "memory_gib_hours": round(consumed.get("memory", 0.0) / GIB, 3),
                "cpu_charged_core_hours": round(spent.get("cpu_charged", 0.0), 3),
                "memory_charged_gib_hours": round(spent.get("memory_charged", 0.0), 3),
            }
        )
    return sorted(rows, key=lambda r: (r["month"], -r["cost_usd"], r["tenant"], r["source"]))
