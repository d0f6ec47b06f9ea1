"""`ml/cost_forecast`: usage and cost for the next 7 and 30 days per namespace, cluster,
tenant and in total, with prediction intervals and the two baselines; plus cost-saving
suggestions (rightsizing, idle namespaces)."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.cluster.cost_allocation import CostConfig, cost_allocation, prices_for
from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.assets.metadata import rounded
from timbel_dagster.assets.ml.cards import card_metadata, forecast_card
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.ml.forecast.cost_data import load_usage_frame
from timbel_dagster.ml.forecast.costs import cost_saving_suggestions, forecast_costs
from timbel_dagster.resources.sources import DeliverySourcesResource

# Bumped whenever the forecaster's method changes (ml/forecast/series.py, ml/forecast/costs.py).
FORECAST_CODE_VERSION = "forecast-2"


def _store(connection, hourly, suggestions) -> tuple[int, int]:
    """Replace the stored forecast and suggestions with this run's, in the caller's
    transaction: they are one snapshot, computed from the whole history each time."""
    import datetime as dt

    from sqlalchemy import delete, insert

    # lazy: warehouse.schema.ml loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.ml import CostForecast, CostSuggestion

    now = dt.datetime.now(dt.UTC)
    # `agg` over no rows gives back a frame, not a column: no usage yet means no forecast.
    keys = hourly[["cluster", "namespace", "tenant"]].fillna("")
    keyed = hourly.assign(key=keys.agg("/".join, axis=1) if len(keys) else "")
    wide = keyed.pivot_table(
        index=["scope", "key", "hour"], columns="metric", values="yhat", aggfunc="first"
    )
    cost = keyed[keyed["metric"] == "cost_usd"].set_index(["scope", "key", "hour"])
    # Joined, not looked up row by row: 14,400 `wide.at[...]` lookups took 7 s of the demo.
    usage = wide.reindex(columns=["cpu_cores", "memory_gib"]).reindex(cost.index)
    joined = cost[["yhat", "lo80", "hi80", "lo95", "hi95"]].join(usage).reset_index()
    rows = [
        {
            "generated_at": now,
            "scope": scope,
            "key": key.strip("/"),
            "hour": hour.to_pydatetime(),
            "cost_usd": float(yhat),
            "cost_lo80": float(lo80),
            "cost_hi80": float(hi80),
            "cost_lo95": float(lo95),
            "cost_hi95": float(hi95),
            "cpu_cores": None if cpu != cpu else float(cpu),  # NaN: no usage forecast
            "memory_gib": None if memory != memory else float(memory),
        }
        for scope, key, hour, yhat, lo80, hi80, lo95, hi95, cpu, memory in joined.itertuples(
            index=False, name=None
        )
    ]
    advice = [
        {
            "generated_at": now,
            "kind": s["kind"],
            "cluster": s["cluster"],
            "namespace": s["namespace"],
            "workload": s.get("workload"),
            "monthly_saving_usd": float(s["monthly_saving_usd"]),
            "summary": s["reason"],
            "details": {k: v for k, v in s.items() if k != "reason"},
        }
        for s in suggestions
    ]
    connection.execute(delete(CostForecast))
    connection.execute(delete(CostSuggestion))
    if rows:
        connection.execute(insert(CostForecast), rows)
    if advice:
        connection.execute(insert(CostSuggestion), advice)
    return len(rows), len(advice)


@dg.asset(
    key=["ml", "cost_forecast"],
    group_name="ml",
    kinds={"pandas", "sql"},
    owners=OWNERS,
    deps=[cost_allocation],
    code_version=FORECAST_CODE_VERSION,
    description="One row per scope (total, cluster, namespace, tenant) and future hour: "
    "forecast cost with 80 % and 95 % intervals for the next 30 days, and cost-saving "
    "suggestions; the 7- and 30-day totals with their own intervals are in the metadata.",
)
def cost_forecast(
    context: dg.AssetExecutionContext,
    config: CostConfig,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    import json

    prices = prices_for(config)
    source = sources.metrics_source().name
    with warehouse.engine().connect() as connection:
        usage = load_usage_frame(connection, source=source)
        workloads = load_usage_frame(connection, source=source, by_workload=True)
    if usage.empty:
        context.log.warning(f"no cluster usage of source {source!r} yet: nothing to forecast")
    result = forecast_costs(usage, prices)
    suggestions = cost_saving_suggestions(workloads, prices, headroom=1 + config.headroom)
    records = json.loads(suggestions.to_json(orient="records", date_format="iso"))
    with warehouse.engine().begin() as connection:
        stored, advised = _store(connection, result.hourly, records)
    totals = result.totals[result.totals["metric"] == "cost_usd"]
    total = totals[totals["scope"] == "total"]
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(stored),
        "suggestions": dg.MetadataValue.int(advised),
        "source": dg.MetadataValue.text(source),
        "totals": markdown_table(
            json.loads(totals.to_json(orient="records")),
            [
                "scope",
                "cluster",
                "namespace",
                "horizon_hours",
                "yhat",
                "lo80",
                "hi80",
                "lo95",
                "hi95",
                "baseline_mean7d",
                "method",
                "model",
            ],
            limit=20,
        ),
    }
    for _, row in total.iterrows():
        days = int(row["horizon_hours"]) // 24
        metadata[f"cost_next_{days}d_usd"] = dg.MetadataValue.float(float(row["yhat"]))
        for bound in ("lo80", "hi80", "lo95", "hi95"):
            metadata[f"cost_next_{days}d_{bound}_usd"] = dg.MetadataValue.float(float(row[bound]))
        if days == 7:
            # The budget figure: the week's total with its own interval (from the backtests'
            # weekly-total errors), which the hourly rows cannot give by summing.
            metadata["cost_next_7d_interval80_usd"] = dg.MetadataValue.text(
                f"{row['lo80']:.2f} - {row['hi80']:.2f} (forecast {row['yhat']:.2f}, "
                f"{row['model']}, {row['interval_method']})"
            )
    series = result.totals[["scope", "cluster", "namespace", "tenant", "metric"]].drop_duplicates()
    metadata["model_card"] = card_metadata(
        forecast_card(FORECAST_CODE_VERSION, result.total_cost, len(series))
    )
    if advised:
        metadata["monthly_saving_usd"] = dg.MetadataValue.float(
            float(suggestions["monthly_saving_usd"].sum())
        )
    return dg.MaterializeResult(metadata=rounded(metadata))
