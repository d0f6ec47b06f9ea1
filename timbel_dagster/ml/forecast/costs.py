"""Usage and cost forecasts per namespace, cluster, tenant and in total, and cost-saving
suggestions, from the hourly frame of `cost_data.load_usage_frame`. Plain pandas.

Series. CPU is cores used and memory GiB used (hourly means). Cost is the cost allocated in
the warehouse where an hour has one (what was charged), else the hour priced with `prices`
by the allocation rule of `cluster/cost_allocation`: max(request, usage) of CPU and memory
plus storage. A namespace's series starts at its first row; an hour its cluster reported
without it counts as 0, an hour its cluster did not report is a gap (filled by the
forecaster). Clusters, tenants and the total are their namespaces' sums, forecast as series
of their own (intervals do not add up), with a namespace counting 0 before its first row.

Every series is forecast hourly for the longest horizon with `series.forecast`, and
totalled over each horizon with intervals (CPU in core-hours, memory in GiB-hours, cost in
USD), beside the totals of the two baselines (the mean
of the last 7 days, and the last week repeated: None under a week of history). Short
histories get simpler methods, named in `method` and explained in `note`; `model` names the
candidates the backtests chose (`series.forecast`). The total cost chooses among all
candidates; the other series among the fast ones (profile, hour-of-day profile, 7-day
mean), so that hundreds of namespaces stay cheap: measured on 6 weeks of 3 clusters x 2
namespaces, 1.8 s before issue 16, 15.6 s with the clusters' cost on all candidates too,
9 s with the total alone (7 s of it the total's backtests); since Holt-Winters left the
pool, the total's forecast on 6 weeks of the Bitbrains cost takes 8.6 s against 14.6 s with
it, side by side on a busy machine. On the demo's sample (24 hours of history: no
backtests) it takes what it took, 0.2 s. The 7-day
total's 80 % interval (`lo80`, `hi80` at `horizon_hours` 168) is the weekly budget figure:
its own interval from the backtests' weekly-total errors, not a sum of hourly bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.forecast import candidates as candidate_models
from timbel_dagster.ml.forecast.cost_data import METRICS, namespace_hours
from timbel_dagster.ml.forecast.series import forecast, mean_last_7d, seasonal_naive

if TYPE_CHECKING:
    import pandas as pd

    from timbel_dagster.ml.forecast.cost_data import Prices

HORIZONS = (168, 720)  # 7 and 30 days
SCOPES = ("namespace", "cluster", "tenant", "total")
TOTAL_EXTRAS = ("baseline_mean7d", "baseline_seasonal_naive", "method", "model",
                "interval_method", "history_hours", "note")  # fmt: skip
# The total cost a budget owner reads gets every candidate (a few seconds on 6 weeks of
# history on a busy 2-core machine: up to 14 backtests of MSTL and gradient boosting); the
# many cluster, namespace and tenant series, and usage, the numpy ones (milliseconds each).
FULL_SELECTION = {("total", "cost_usd")}
WEEK_HOURS = 168
NOTES = {
    "flat-mean": "under 2 days of history: flat mean of the last day",
    "daily-profile": "under 14 days of history: hour-of-day shape only",
    "weekly-profile": "",
}


@dataclass(frozen=True)
class CostForecast:
    """`hourly`: scope, cluster, namespace, tenant, metric, hour, yhat and interval columns,
    for the longest horizon. `totals`: the same keys plus horizon_hours, the totals with
    intervals, baseline_mean7d, baseline_seasonal_naive, method, interval_method,
    history_hours and note."""

    hourly: pd.DataFrame
    totals: pd.DataFrame
    # How the total cost was forecast, for the model card: first_hour, last_hour, hours,
    # model, method, interval_method, ranking and backtest (`selection.backtest_summary`,
    # None without backtests). None when there is no cost to forecast.
    total_cost: dict[str, Any] | None = None


def scope_series(rows: pd.DataFrame, metric: str) -> list[tuple[dict[str, Any], pd.Series]]:
    """(keys, hourly series) of one metric for every namespace, cluster, tenant and the
    total, from `cost_data.namespace_hours` rows; keys are scope, cluster, namespace and
    tenant (None where they do not apply). See the module docstring for gaps and zeros."""
    import numpy as np
    import pandas as pd

    grid = pd.date_range(rows["hour"].min(), rows["hour"].max(), freq="1h")
    wide = rows.pivot(index="hour", columns=["cluster", "namespace"], values=metric)
    wide = wide.reindex(grid)
    reported = rows.groupby(["hour", "cluster"]).size().unstack().reindex(grid).notna()
    first = rows.groupby(["cluster", "namespace"])["hour"].min()
    for cluster, namespace in wide.columns:
        column = wide[(cluster, namespace)]
        wide[(cluster, namespace)] = column.where(column.notna() | ~reported[cluster], 0.0).where(
            grid >= first[(cluster, namespace)], np.nan
        )
    tenant_of = rows.groupby(["cluster", "namespace"])["tenant"].last()
    out: list[tuple[dict[str, Any], pd.Series]] = []
    for (cluster, namespace), column in wide.items():
        keys = {
            "scope": "namespace",
            "cluster": cluster,
            "namespace": namespace,
            "tenant": tenant_of[(cluster, namespace)],
        }
        out.append((keys, column.loc[first[(cluster, namespace)] :]))
    # Before a namespace's first row it counts as 0 in the sums; gaps stay gaps.
    before = pd.DataFrame({c: grid < first[c] for c in wide.columns}, index=grid).reindex(
        columns=wide.columns
    )
    sums = wide.mask(before, 0.0)
    groups: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
        ({"scope": "cluster", "cluster": c}, [k for k in wide.columns if k[0] == c])
        for c in sorted({k[0] for k in wide.columns})
    ]
    groups += [
        ({"scope": "tenant", "tenant": t}, [k for k in wide.columns if tenant_of[k] == t])
        for t in sorted(set(tenant_of))
    ]
    groups.append(({"scope": "total"}, list(wide.columns)))
    for keys, members in groups:
        total = sums[members].sum(axis=1, min_count=len(members))
        start = min(first[m] for m in members)
        labels = {"scope": keys["scope"], "cluster": keys.get("cluster"), "namespace": None}
        out.append((labels | {"tenant": keys.get("tenant")}, total[start:]))
    return out


def forecast_costs(
    usage_frame: pd.DataFrame,
    prices: Prices,
    horizons: Sequence[int] = HORIZONS,
    levels: Sequence[float] = (0.8, 0.95),
    scopes: Sequence[str] = SCOPES,
) -> CostForecast:
    """Hourly forecasts and horizon totals of CPU cores, memory GiB and cost (USD) per
    namespace, cluster, tenant and in total.

    Args:
        usage_frame: `cost_data.load_usage_frame` rows of one source (any number of
            clusters); `workload` rows are summed per namespace.
        prices: USD per unit-hour for hours without a stored cost.
        horizons: hours to total over (the longest is forecast hourly).
        levels: prediction-interval levels.
        scopes: which of namespace, cluster, tenant and total to forecast.

    Returns:
        A `CostForecast`; both frames empty when the usage frame is.

    Raises:
        ValueError: missing columns, several sources, bad horizons, levels or scopes.
    """
    import pandas as pd

    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not horizons:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)} and horizons non-empty")
    longest = max(horizons)
    hourly_parts, total_rows = [], []
    total_cost = None
    rows = namespace_hours(usage_frame, prices)
    for metric in METRICS if not rows.empty else ():
        for keys, series in scope_series(rows, metric):
            if keys["scope"] not in scopes or series.isna().all():
                continue
            pool = (
                candidate_models.ALL
                if (keys["scope"], metric) in FULL_SELECTION
                else candidate_models.FAST
            )
            card = (keys["scope"], metric) == ("total", "cost_usd")
            result = forecast(
                series, longest, levels, totals=horizons, candidates=pool, summarise=card
            )
            if card:
                total_cost = {
                    "first_hour": series.index[0],
                    "last_hour": series.index[-1],
                    "hours": result.history_steps,
                    "model": result.model,
                    "method": result.method,
                    "interval_method": result.interval_method,
                    "ranking": result.ranking,
                    "backtest": result.backtest,
                }
            labels = keys | {"metric": metric}
            hourly_parts.append(result.hourly.reset_index().assign(**labels))
            mean7 = float(mean_last_7d(series, 1).iloc[0])
            naive = (
                seasonal_naive(series, longest, WEEK_HOURS) if len(series) >= WEEK_HOURS else None
            )
            for horizon in sorted(set(horizons)):
                note = NOTES[result.method]
                if result.interval_method not in ("backtest", "backtest, relative"):
                    note = "; ".join(filter(None, [note, f"intervals: {result.interval_method}"]))
                total_rows.append(
                    labels
                    | {"horizon_hours": horizon}
                    | result.totals[horizon]
                    | {
                        "baseline_mean7d": mean7 * horizon,
                        "baseline_seasonal_naive": None
                        if naive is None
                        else float(naive.iloc[:horizon].sum()),
                        "method": result.method,
                        "model": result.model,
                        "interval_method": result.interval_method,
                        "history_hours": result.history_steps,
                        "note": note,
                    }
                )
    keys = ["scope", "cluster", "namespace", "tenant", "metric"]
    bounds = [f"{side}{round(level * 100)}" for level in levels for side in ("lo", "hi")]
    hourly = pd.DataFrame(columns=[*keys, "hour", "yhat", *bounds])
    if hourly_parts:
        hourly = pd.concat(hourly_parts, ignore_index=True)[list(hourly.columns)]
    totals = pd.DataFrame(total_rows, columns=[*keys, "horizon_hours", "yhat", *bounds,
                                               *TOTAL_EXTRAS])  # fmt: skip
    return CostForecast(hourly, totals, total_cost)


# The same headroom as the rightsizing of cluster/cost_allocation (assets/cluster/cost.py),
# so that both say the same thing about a workload.
HEADROOM = 1.15
PERCENTILE = 0.95
HOURS_PER_MONTH = 730  # 8760 / 12
MIN_HOURS = 24  # fewer hours say too little about a workload's peaks
IDLE_CPU_CORES = 0.01  # 10 millicores: a sidecar at rest, not a workload
IDLE_MEMORY_GIB = 0.0625  # 64 MiB
SUGGESTION_COLUMNS = (
    "kind",
    "cluster",
    "namespace",
    "workload",
    "tenant",
    "hours",
    "cpu_requested",
    "cpu_p95",
    "cpu_suggested",
    "memory_gib_requested",
    "memory_gib_p95",
    "memory_gib_suggested",
    "monthly_saving_usd",
    "reason",
)


def _saving(requested: float, suggested: float, used: pd.Series) -> float:
    """Mean hourly units saved when a request is cut: each hour is charged max(request,
    usage), so hours used above the new request save less."""
    if not suggested < requested:
        return 0.0
    return float((used.clip(lower=requested) - used.clip(lower=suggested)).mean())


def cost_saving_suggestions(
    usage_frame: pd.DataFrame,
    prices: Prices,
    headroom: float = HEADROOM,
    percentile: float = PERCENTILE,
    idle_cpu_cores: float = IDLE_CPU_CORES,
    idle_memory_gib: float = IDLE_MEMORY_GIB,
    min_hours: int = MIN_HOURS,
) -> pd.DataFrame:
    """Rightsizing and idle-namespace suggestions over the whole window of the frame.

    Rightsizing (per workload when the frame has a `workload` column, else per namespace):
    the suggested request is the `percentile` of hourly usage times `headroom`; where that
    is below the request of the latest hour, the saving is what the hours of the window
    would have cost less under max(request, usage) charging, times 730 hours a month.
    Idle: a namespace whose CPU stayed under `idle_cpu_cores` and memory under
    `idle_memory_gib` in every hour; its saving is its mean hourly cost (requests and
    storage included) times 730, and it gets no rightsizing rows. Groups with fewer than
    `min_hours` hours, and idle namespaces that cost nothing, are left out.

    Returns:
        `SUGGESTION_COLUMNS`, largest saving first (`workload` None for namespace rows).

    Raises:
        ValueError: missing columns, several sources, headroom < 1 or percentile outside (0, 1].
    """
    import pandas as pd

    if headroom < 1 or not 0 < percentile <= 1:
        raise ValueError(
            f"headroom ({headroom}) must be >= 1 and percentile ({percentile}) in (0, 1]"
        )
    per_namespace = namespace_hours(usage_frame, prices)
    rows: list[dict[str, Any]] = []
    idle = set()
    for (cluster, namespace), group in per_namespace.groupby(["cluster", "namespace"]):
        hours = len(group)
        quiet = (group["cpu_cores"].max() < idle_cpu_cores) and (
            group["memory_gib"].max() < idle_memory_gib
        )
        saving = float(group["cost_usd"].mean()) * HOURS_PER_MONTH
        if hours >= min_hours and quiet and saving > 0:
            idle.add((cluster, namespace))
            rows.append(
                {
                    "kind": "idle",
                    "cluster": cluster,
                    "namespace": namespace,
                    "workload": None,
                    "tenant": group["tenant"].iloc[-1],
                    "hours": hours,
                    "monthly_saving_usd": saving,
                    "reason": f"at most {group['cpu_cores'].max():.3f} cores and "
                    f"{group['memory_gib'].max():.3f} GiB used in each of {hours} h",
                }
            )
    frame = usage_frame.assign(hour=pd.to_datetime(usage_frame["hour"], utc=True))
    keys = ["cluster", "namespace", *(["workload"] if "workload" in frame.columns else [])]
    for at, group in frame.sort_values("hour").groupby(keys):
        if tuple(at[:2]) in idle or group["hour"].nunique() < min_hours:
            continue
        row: dict[str, Any] = {"workload": None} | dict(zip(keys, at, strict=True))
        saving = 0.0
        for resource, used, requested, price in (
            ("cpu", "cpu_used_cores", "cpu_requested_cores", prices.cpu_core_hour),
            ("memory_gib", "memory_gib_used", "memory_gib_requested", prices.memory_gib_hour),
        ):
            p95 = float(group[used].quantile(percentile))
            now = float(group[requested].iloc[-1])
            cut = p95 * headroom
            row |= {
                f"{resource}_requested": now,
                f"{resource}_p95": p95,
                f"{resource}_suggested": min(cut, now),
            }
            saving += _saving(now, cut, group[used]) * price
        if saving > 0:
            rows.append(
                row
                | {
                    "kind": "rightsizing",
                    "tenant": group["tenant"].iloc[-1],
                    "hours": int(group["hour"].nunique()),
                    "monthly_saving_usd": saving * HOURS_PER_MONTH,
                    "reason": f"requests above p{round(percentile * 100)} usage x {headroom:g}",
                }
            )
    result = pd.DataFrame(rows, columns=list(SUGGESTION_COLUMNS))
    return result.sort_values(
        ["monthly_saving_usd", "cluster", "namespace"],
        ascending=[False, True, True],
        ignore_index=True,
    )
