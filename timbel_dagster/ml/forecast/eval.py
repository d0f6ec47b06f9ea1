"""Rolling-origin evaluation of the forecaster against its baselines, on a series or a CSV.

MASE divides the forecast's mean absolute error by the in-sample mean absolute error of the
seasonal-naive forecast with a one-day season (m = 24 at hourly steps, the seasonal period
M4 uses for hourly series), computed on the history before each origin: the training data of
that origin; the same scale for every method. This is the standard definition (Hyndman and
Koehler 2006, "Another look at measures of forecast accuracy"; Hyndman and Athanasopoulos,
FPP3 section 5.8: the in-sample MAE of the naive or seasonal-naive forecast on the training
data), with the one-day season; a one-week season (m = 168) would shrink the scale and raise
every MASE here by about 13 %, a lag-1 naive would quadruple them. Steps with no actual value
are left out of every figure.

The horizon total error is |sum(forecast) - sum(actual)| / sum(actual) in percent; with the
default one-week horizon it is the weekly total error.

Beside the baselines, a bound: `hindsight_daily_shape_mase` scores, at each origin, the
scored horizon's own median per time of day, known only once the horizon is over. A median
minimises the absolute error, so this is the lowest MASE of any forecast that gives each time
of day one value over the horizon, a level and daily shape known perfectly in advance; only
a forecast that also knew the day-to-day swings ahead of time could score lower. It is scored
over the steps whose time of day the horizon holds at least twice (`hindsight_steps`): the
median of one value is that value, so a horizon of a day or less has none. It says how
much of a series is forecastable a horizon ahead: on the Bitbrains cost trace's 4 scored
weeks it is 0.896 (the forecaster 1.005, the 7-day mean 1.110), which is why issue 16's
MASE < 0.75 is out of reach there (docs/benchmarks.md).

A CSV's samples are resampled to `freq`. Usage columns are levels (CPU MHz in use, bytes of
memory: each sample is the state over its interval), so a coarser step takes their MEAN: the
average level over the hour. Counters of amounts per interval (requests served, dollars spent
per 5 minutes) take the SUM instead (`agg="sum"`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.forecast import candidates as candidate_models
from timbel_dagster.ml.forecast.selection import BACKTESTS, TOP, Selector, select_top
from timbel_dagster.ml.forecast.series import forecast, mean_last_7d, regular_series, seasonal_naive

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MIN_HISTORY = dt.timedelta(days=14)  # the weekly profile and a week-long seasonal naive
MASE_SEASON = dt.timedelta(days=1)
LEVELS = (0.8, 0.95)
SELECTION = (
    f"at each origin, candidates ranked by mean MASE over up to {BACKTESTS} one-week backtests "
    "inside the history before the origin (origins 2 days apart); forecast = median of the "
    f"best {TOP} (of {len(candidate_models.ALL)}); intervals from the same backtests' errors"
)


def mase_scale(history: np.ndarray, season: int) -> float:
    """Mean |y[t] - y[t - season]| over the history (pairs with a missing value skipped)."""
    import numpy as np

    season = max(1, season)
    if len(history) <= season:
        return float("nan")
    diffs = np.abs(history[season:] - history[:-season])
    return float(np.nanmean(diffs)) if not np.isnan(diffs).all() else float("nan")


def mase(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    """Mean absolute error over `scale` (NaN when the scale is 0 or unknown)."""
    import numpy as np

    if not scale > 0:
        return float("nan")
    return float(np.mean(np.abs(np.asarray(forecast) - np.asarray(actual))) / scale)


def total_error_pct(actual: np.ndarray, forecast: np.ndarray) -> float:
    """|sum(forecast) - sum(actual)| / sum(actual) x 100 (NaN when nothing was used)."""
    import numpy as np

    spent = float(np.sum(actual))
    if spent == 0:
        return float("nan")
    return abs(float(np.sum(forecast)) - spent) / abs(spent) * 100


def hindsight_daily_shape(actual: np.ndarray, times: pd.DatetimeIndex) -> np.ndarray:
    """Each step: the median of the `actual` values at the same time of day (the bound the
    module docstring describes; NaN steps skipped). NaN where a time of day has fewer than 2
    values: the median of one value is that value, a "bound" of 0 that bounds nothing (a
    horizon of a day or less, or daily steps)."""
    import numpy as np
    import pandas as pd

    slots = np.asarray(times.hour * 3600 + times.minute * 60 + times.second)
    by_slot = pd.Series(actual).groupby(slots)
    medians = by_slot.transform("median").where(by_slot.transform("count") >= 2)
    return medians.to_numpy(dtype=float)


def _mean(values: list[float]) -> float | None:
    import numpy as np

    finite = [v for v in values if v is not None and np.isfinite(v)]
    return round(float(np.mean(finite)), 4) if finite else None


def evaluate_series(
    series: pd.Series,
    horizon: int = 168,
    origins: int = 4,
    candidates: Sequence[str] = candidate_models.ALL,
    selector: Selector = select_top,
) -> dict[str, Any]:
    """Forecast from `origins` origins one horizon apart, ending at the series' end, and
    score the forecaster and both baselines on the same steps.

    At each origin the forecaster is given only the history before it: its choice among
    `candidates` (by `selector`) and its intervals come from backtests inside that history.

    Returns:
        Means over origins: `mase`, `weekly_total_error_pct` (the horizon's total),
        `baseline_mean7d_mase`, `baseline_seasonal_naive_mase` and the baselines' total
        errors, `hindsight_daily_shape_mase` (the bound of the module docstring),
        `coverage80`/`coverage95` (share of actual steps inside the intervals);
        `hourly_coverage80`/`95` pooled over all scored steps; `weekly_total_in_interval80`
        (origins whose actual total is inside its 80 % interval) and
        `weekly_total_interval80` (each origin's (low, high)); `n_origins`, `selection`
        (how the method was chosen), and `per_origin` details (the chosen `model`, the
        candidates' backtest MASE in `ranking`, the figures of both baselines, the actual
        and forecast totals and `weekly_total_interval80`).

    Raises:
        ValueError: a bad series, or fewer steps than horizon x origins + 14 days.
    """
    import numpy as np
    import pandas as pd

    if horizon < 1 or origins < 1:
        raise ValueError(f"horizon ({horizon}) and origins ({origins}) must be at least 1")
    raw, times, step = regular_series(series)
    needed = horizon * origins + MIN_HISTORY // step
    if len(raw) < needed:
        raise ValueError(
            f"the series has {len(raw)} steps of {step}; horizon {horizon} x {origins} "
            f"origins + {MIN_HISTORY // step} steps of history = {needed} needed"
        )
    regular = pd.Series(raw, index=times)
    season = MASE_SEASON // step
    rows = []
    for k in range(origins, 0, -1):
        origin = len(raw) - k * horizon
        history, actual = regular.iloc[:origin], raw[origin : origin + horizon]
        ok = ~np.isnan(actual)
        if not ok.any():
            continue
        made = forecast(history, horizon, LEVELS, candidates=candidates, selector=selector)
        result = made.hourly
        methods = {
            "forecast": result["yhat"].to_numpy(),
            "mean7d": mean_last_7d(history, horizon).to_numpy(),
            "seasonal_naive": seasonal_naive(history, horizon, 7 * (dt.timedelta(days=1) // step))
            .to_numpy(),
        }  # fmt: skip
        shape = hindsight_daily_shape(actual, times[origin : origin + horizon])
        scale = mase_scale(raw[:origin], season)
        total = made.total
        spent = float(actual[ok].sum())
        row: dict[str, Any] = {
            "origin": times[origin].isoformat(),
            "scale": scale,
            "model": made.model,
            "ranking": made.ranking,
            "interval_method": made.interval_method,
            "actual_total": spent,
            "forecast_total": float(result["yhat"].to_numpy()[ok].sum()),
            "weekly_total_interval80": [round(total["lo80"], 4), round(total["hi80"], 4)],
            "weekly_total_in_interval80": int(total["lo80"] <= spent <= total["hi80"]),
            "weekly_total_in_interval95": int(total["lo95"] <= spent <= total["hi95"]),
            "hours": int(ok.sum()),
        }
        # Over the steps whose time of day the horizon holds twice or more (a gap that leaves
        # one value of an hour drops that step only); None when no step has a bound.
        bounded = ok & ~np.isnan(shape)
        bound = mase(actual[bounded], shape[bounded], scale) if bounded.any() else float("nan")
        row["hindsight_daily_shape_mase"] = bound if np.isfinite(bound) else None
        row["hindsight_steps"] = int(bounded.sum())
        for name, values in methods.items():
            row[f"{name}_mase"] = mase(actual[ok], values[ok], scale)
            row[f"{name}_total_error_pct"] = total_error_pct(actual[ok], values[ok])
        for level in LEVELS:
            name = round(level * 100)
            lo, hi = result[f"lo{name}"].to_numpy()[ok], result[f"hi{name}"].to_numpy()[ok]
            inside = (actual[ok] >= lo) & (actual[ok] <= hi)
            row[f"coverage{name}"] = float(np.mean(inside))
            row[f"hours_inside{name}"] = int(inside.sum())
        rows.append(row)
    hours = sum(r["hours"] for r in rows)

    def mean_of(key: str) -> float | None:
        return _mean([r[key] for r in rows])

    return {
        "mase": mean_of("forecast_mase"),
        "weekly_total_error_pct": mean_of("forecast_total_error_pct"),
        "baseline_mean7d_mase": mean_of("mean7d_mase"),
        "baseline_seasonal_naive_mase": mean_of("seasonal_naive_mase"),
        "hindsight_daily_shape_mase": mean_of("hindsight_daily_shape_mase"),
        "n_origins": len(rows),
        "baseline_mean7d_weekly_total_error_pct": mean_of("mean7d_total_error_pct"),
        "baseline_seasonal_naive_weekly_total_error_pct": mean_of("seasonal_naive_total_error_pct"),
        "coverage80": mean_of("coverage80"),
        "coverage95": mean_of("coverage95"),
        "hourly_coverage80": round(sum(r["hours_inside80"] for r in rows) / hours, 4),
        "hourly_coverage95": round(sum(r["hours_inside95"] for r in rows) / hours, 4),
        "weekly_total_in_interval80": sum(r["weekly_total_in_interval80"] for r in rows),
        "weekly_total_in_interval95": sum(r["weekly_total_in_interval95"] for r in rows),
        "weekly_total_interval80": [r["weekly_total_interval80"] for r in rows],
        "selection": SELECTION,
        "candidates": list(candidates),
        "horizon": horizon,
        "step": str(step),
        "mase_season_steps": season,
        "n_steps": len(raw),
        "per_origin": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows
        ],
    }


def _line(position: int) -> int:
    return position + 2  # a header line, and lines count from 1


def read_series(
    path: str | Path, time_col: str, value_col: str, freq: str = "1h", agg: str = "mean"
) -> pd.Series:
    """One column of a CSV as a series resampled to `freq` (UTC; steps without samples NaN).

    A numeric time column is read as Unix seconds, any other as date-times (UTC unless
    they say otherwise). `agg` is `mean` for levels or `sum` for amounts per interval.

    Raises:
        ValueError: naming the file and what is wrong: missing file or column, an
            unparsable time or value (with its line), times out of order or duplicated.
    """
    import numpy as np
    import pandas as pd

    path = Path(path)
    if agg not in ("mean", "sum"):
        raise ValueError(f"agg must be mean or sum, not {agg!r}")
    try:
        step = pd.Timedelta(freq)
    except ValueError:
        raise ValueError(f"freq {freq!r} is not a duration such as 1h or 15min") from None
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    frame = pd.read_csv(path)
    missing = [c for c in (time_col, value_col) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: no column(s) {', '.join(missing)}; it has {', '.join(map(str, frame))}"
        )
    if frame.empty:
        raise ValueError(f"{path}: no rows")
    column = frame[time_col]
    if pd.api.types.is_numeric_dtype(column):
        times = pd.to_datetime(column, unit="s", utc=True, errors="coerce")
    else:
        times = pd.to_datetime(column, utc=True, errors="coerce", format="mixed")
    bad = np.flatnonzero(times.isna().to_numpy())
    if len(bad):
        at = bad[0]
        raise ValueError(f"{path}: line {_line(at)}: {time_col} {column.iloc[at]!r} is not a time")
    values = pd.to_numeric(frame[value_col], errors="coerce")
    bad = np.flatnonzero((values.isna() & frame[value_col].notna()).to_numpy())
    if len(bad):
        at = bad[0]
        raise ValueError(
            f"{path}: line {_line(at)}: {value_col} {frame[value_col].iloc[at]!r} is not a number"
        )
    gaps = times.diff().to_numpy()[1:]
    for problem, mask in (("goes back in time", gaps < np.timedelta64(0)),
                          ("repeats the previous time", gaps == np.timedelta64(0))):  # fmt: skip
        if mask.any():
            at = int(np.flatnonzero(mask)[0]) + 1
            raise ValueError(f"{path}: line {_line(at)}: {time_col} {problem} ({times.iloc[at]})")
    series = pd.Series(values.to_numpy(dtype=float), index=pd.DatetimeIndex(times), name=value_col)
    resampled = series.resample(step)
    return resampled.mean() if agg == "mean" else resampled.sum(min_count=1)


def evaluate_csv(
    path: str | Path,
    time_col: str,
    value_col: str,
    freq: str = "1h",
    horizon: int = 168,
    origins: int = 4,
    agg: str = "mean",
) -> dict[str, Any]:
    """`read_series` then `evaluate_series`; the result also names the file and column.

    Raises:
        ValueError: see `read_series` and `evaluate_series`.
    """
    series = read_series(path, time_col, value_col, freq, agg)
    try:
        result = evaluate_series(series, horizon, origins)
    except ValueError as error:
        raise ValueError(f"{path}: {value_col} at {freq}: {error}") from None
    return result | {"csv": str(path), "value_col": value_col, "freq": freq, "agg": agg}
