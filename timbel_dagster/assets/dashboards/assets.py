"""`dashboards/grafana_dashboards`: Grafana dashboards over the warehouse, written as files
Grafana provisions, with the key numbers in the asset's metadata."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import json
from pathlib import Path

import dagster as dg

from timbel_dagster.assets.dashboards.grafana import (
    DASHBOARD_PROVISIONING,
    DASHBOARDS,
    DATASOURCE_PROVISIONING,
)
from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.assets.metadata import rounded
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.settings import get_settings


class GrafanaConfig(dg.Config):
    directory: str | None = None  # default TIMBEL_GRAFANA_DIR, else TIMBEL_HOME/grafana


def _write(path: Path, text: str) -> bool:
    """Replace `path` whole (Grafana polls the folder and must never read half a file), and
    only when its content changes; True when it did."""
    if path.exists() and path.read_text() == text:
        return False
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    partial.replace(path)
    return True


def _daily_cost(connection) -> list[dict]:
    from sqlalchemy import func, select

    # lazy: warehouse.schema.cluster loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.cluster import CostAllocation as C

    latest = connection.execute(select(func.max(C.hour))).scalar()
    if latest is None:
        return []
    import datetime as dt

    rows = connection.execute(
        select(C.hour, C.total_cost).where(C.hour > latest - dt.timedelta(days=7))
    ).all()
    days: dict[str, float] = {}
    for hour, cost in rows:
        day = hour.strftime("%Y-%m-%d")
        days[day] = days.get(day, 0.0) + cost
    return [{"day": d, "cost_usd": round(c, 2)} for d, c in sorted(days.items())]


def _utilisation(connection) -> float | None:
    from sqlalchemy import func, select

    # lazy: warehouse.schema.cluster loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.cluster import NamespaceUsage as N

    latest = connection.execute(select(func.max(N.hour))).scalar()
    if latest is None:
        return None
    used, requested = connection.execute(
        select(func.sum(N.cpu_used_cores), func.sum(N.cpu_requested_cores)).where(N.hour == latest)
    ).one()
    return round(used / requested, 4) if requested else None


@dg.asset(
    key=["dashboards", "grafana_dashboards"],
    group_name="dashboards",
    kinds={"grafana", "json"},
    owners=OWNERS,
    deps=[
        ["cluster", "namespace_usage"],
        ["cluster", "workload_status"],
        ["cluster", "cost_allocation"],
        ["cicd", "dora_metrics"],
    ],
    description="One Grafana dashboard JSON file per view of the warehouse (cluster "
    "resources, cost, DORA), plus the data source and dashboard provisioning files.",
)
def grafana_dashboards(
    context: dg.AssetExecutionContext, config: GrafanaConfig, warehouse: WarehouseResource
):
    settings = get_settings()
    directory = Path(
        config.directory or settings.timbel_grafana_dir or settings.timbel_home / "grafana"
    )
    directory.mkdir(parents=True, exist_ok=True)
    panels = changed = 0
    for name, build in DASHBOARDS.items():
        dashboard = build()
        panels += len(dashboard["panels"])
        changed += _write(directory / name, json.dumps(dashboard, indent=2) + "\n")
    changed += _write(directory / "datasource.yaml", DATASOURCE_PROVISIONING)
    changed += _write(
        directory / "dashboards.yaml",
        DASHBOARD_PROVISIONING.format(path=directory.resolve()),
    )
    with warehouse.engine().connect() as connection:
        daily = _daily_cost(connection)
        utilisation = _utilisation(connection)
    context.log.info(f"wrote {len(DASHBOARDS)} dashboards ({panels} panels) to {directory}")
    metadata = {
        "directory": dg.MetadataValue.path(str(directory.resolve())),
        "dashboards": dg.MetadataValue.int(len(DASHBOARDS)),
        "panels": dg.MetadataValue.int(panels),
        "rows_written": dg.MetadataValue.int(changed),  # files whose content changed
        "daily_cost_last_7_days": markdown_table(daily, ["day", "cost_usd"], limit=7),
    }
    if daily:
        metadata["cost_last_day_usd"] = dg.MetadataValue.float(daily[-1]["cost_usd"])
    if utilisation is not None:
        metadata["cpu_used_over_requested"] = dg.MetadataValue.float(utilisation)
    return dg.MaterializeResult(metadata=rounded(metadata))
