"""Forecast an hourly usage or cost series, with prediction intervals, and two baselines.

The point forecast is made per series and per origin, inside the history only
(`selection.py`): up to 14 one-week backtests, origins 2 days apart, rank the candidates of
`candidates.py` (the level-times-profile forecaster of `profile.py`, its hour-of-day
variant, the 7-day mean, a two-week seasonal mean, MSTL with exponential smoothing, gradient
boosting with absolute-error loss on calendar and lag features) by mean MASE, and the
forecast is the median of the best `selection.TOP` = 6, that is of all of them (chosen on
design origins before the later scored weeks). Histories too short for 3 backtests get the
profile forecaster alone, whose tier (flat mean, hour-of-day, day-of-week shape) follows
from their length.

Measured on the Bitbrains trace (hourly cost at OpenCost's prices; one week ahead from the
4 origins a week apart at the end of the trace, 2013-08-04 to 08-25, every choice made on
the weeks before each origin): MASE 0.785 / 1.110 / 0.935 / 1.190, mean 1.005, against
1.110 for the mean of the last 7 days and 1.161 for seasonal naive; weekly total error
27.4 / 16.5 / 10.8 / 16.7 %, mean 17.8 %, against 17.3 % and 16.0 %. The design choices
(pool, TOP) were made on daily origins up to 08-11, so only the weeks from 08-18 and 08-25
are held out: 0.935 and 1.190 (the previous rule: 0.904 and 1.190; the 7-day mean 0.958
and 1.421). The issue's goals for held-out data (MASE < 0.75, weekly error 0.8x the better
baseline's) are not met: this trace is batch work, hours either idle (about 2 USD) or busy
(10-14 USD) in runs of hours to days, and even a flat forecast at each scored week's own
median, known in hindsight, scores MASE 1.048; what is left to forecast a week ahead is
mostly noise at the scale of one-day seasonal naive.

Intervals are empirical, from the chosen forecast's errors in the same backtests (so a
little optimistic: the selection saw them). Hourly: the quantiles of the errors divided by
each backtest's mean forecast, pooled over lead times, times the mean forecast of the
coming week (absolute errors for a series that goes negative); measured on the 4 weeks
above, 83.0 % of hours inside the 80 % interval (84 / 77 / 88 / 83 %) and 96.6 % inside
the 95 % interval; over the 28 daily origins from 2013-07-29 to 08-25 (overlapping weeks),
81.9 %. Before issue 16's pool change, per-lead-day quantiles covered no better (78.6 %: the
errors barely grow with the lead) and absolute errors only 61 %, as the trace's level rose
through August.
A horizon's total: the forecast total times 1 +- t x the root mean square of the
backtests' relative errors of their week totals, Student's t with the number of
non-overlapping weeks they span less one as degrees of freedom (2-4: wide on purpose, the
few weeks cannot tell a lasting bias from a bad week), widened by sqrt(horizon / window)
past a week since a level error persists. Measured: each of the 4 weekly totals inside its
80 % interval, which spans about +-45 % of the forecast; over the 28 daily origins, 89 %
(93 % before the pool change; the t factor errs wide; normal quantiles instead would
have covered 68 % then).
With too little history for 3 backtests, the in-sample residuals stand in for hourly
intervals (narrower than the truth) and the sum of the hourly bounds for the total
(wider). `Forecast.interval_method` says which was used, `Forecast.model` which candidates
were combined.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.forecast import candidates as candidate_models
from timbel_dagster.ml.forecast.profile import fill_gaps, point_forecast
from timbel_dagster.ml.forecast.selection import (
    MIN_BACKTESTS,
    Backtests,
    Selector,
    backtest_summary,
    backtests,
    combine,
    label,
    select_top,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)


@dataclass(frozen=True)
class Forecast:
    """An hourly forecast frame (`yhat`, `loNN`, `hiNN`), totals over the first N steps with
    the same keys (`totals[N]`), and how they were made."""

    hourly: pd.DataFrame
    totals: dict[int, dict[str, float]]
    method: str  # flat-mean, daily-profile or weekly-profile
    interval_method: str  # backtest or in-sample, and how totals were bounded
    history_steps: int
    model: str = candidate_models.DEFAULT  # the chosen candidates, e.g. median(profile, gbm)
    ranking: dict[str, float] | None = None  # each candidate's mean backtest MASE
    backtest: dict[str, Any] | None = None  # `backtest_summary`, when asked to `summarise`

    @property
    def total(self) -> dict[str, float]:
        """The whole horizon's total."""
        return self.totals[len(self.hourly)]


def regular_series(history: pd.Series) -> tuple[np.ndarray, pd.DatetimeIndex, dt.timedelta]:
    """The values on a regular UTC grid (missing steps NaN), the grid, and its step.

    Raises:
        ValueError: not a time-indexed series, unsorted or duplicated times, off-grid times,
            a step that does not divide a day, or no values at all.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(history, pd.Series) or not isinstance(history.index, pd.DatetimeIndex):
        raise ValueError("history must be a pandas Series with a DatetimeIndex")
    index = history.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    if index.has_duplicates:
        raise ValueError(f"history has duplicated timestamps, e.g. {index[index.duplicated()][0]}")
    if not index.is_monotonic_increasing:
        raise ValueError("history timestamps are not in increasing order")
    values = pd.to_numeric(history, errors="coerce").to_numpy(dtype=float)
    if len(values) == 0 or np.isnan(values).all():
        raise ValueError("history has no values")
    if len(index) > 1:
        step = pd.Series(index).diff().min().to_pytimedelta()
    else:
        step = dt.timedelta(hours=1)
    if DAY % step:
        raise ValueError(f"history step {step} does not divide a day")
    grid = pd.date_range(index[0], index[-1], freq=step)
    if not index.isin(grid).all():
        raise ValueError(f"history timestamps are not on a regular {step} grid")
    regular = pd.Series(values, index=index).reindex(grid)
    return regular.to_numpy(dtype=float), grid, step


def _columns(levels: Sequence[float]) -> list[tuple[float, str, str]]:
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"interval level {level!r} must be between 0 and 1")
    return [(lv, f"lo{round(lv * 100)}", f"hi{round(lv * 100)}") for lv in levels]


def _window_errors(
    tests: Backtests, members: Sequence[str], raw_min: float
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The chosen forecast's backtest errors: per step (relative to the mean of each window's
    forecast when the series never goes negative, else absolute; NaN-free), per window's
    total (actual / forecast - 1), and whether the step errors are relative."""
    import numpy as np

    predicted = combine(tests.forecasts, members)
    means = predicted.mean(axis=1, keepdims=True)
    relative = bool(raw_min >= 0 and (means > 0).all())
    errors = tests.actual - predicted
    if relative:
        errors = errors / means
    totals = []
    for actual, forecast in zip(tests.actual, predicted, strict=True):
        ok = ~np.isnan(actual)
        if ok.any() and forecast[ok].sum() > 0:
            totals.append(actual[ok].sum() / forecast[ok].sum() - 1)
    return errors[~np.isnan(errors)], np.array(totals), relative


def forecast(
    history: pd.Series,
    horizon: int,
    levels: Sequence[float] = (0.8, 0.95),
    totals: Sequence[int] = (),
    candidates: Sequence[str] = candidate_models.ALL,
    selector: Selector = select_top,
    summarise: bool = False,
) -> Forecast:
    """Forecast the next `horizon` steps of a regular series and totals over them.

    Args:
        history: values indexed by time (hourly; naive times are taken as UTC). Missing
            steps are allowed; at least one value is needed.
        horizon: steps to forecast (168 = 7 days, 720 = 30 days at hourly steps).
        levels: central prediction-interval levels, e.g. 0.8 -> columns lo80 and hi80.
        totals: shorter spans (in steps) to total besides the whole horizon.
        candidates: names in `candidates.BASE` (and the combinations) to choose among.
        selector: picks the members of the forecast from the backtests (`select_top`).
        summarise: also score the chosen forecast and both baselines in the backtests
            (`Forecast.backtest`; about 1 ms a series, so only where a card shows it).

    Returns:
        A `Forecast`; intervals never go below 0 for a series that never did.

    Raises:
        ValueError: a bad history (see `regular_series`), horizon, level, total span or
            candidate name.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive number of steps, not {horizon!r}")
    spans = sorted({*totals, horizon})
    if spans[0] < 1 or spans[-1] > horizon:
        raise ValueError(f"total spans {list(totals)} must be between 1 and horizon {horizon}")
    known = {*candidate_models.BASE, *candidate_models.COMBINATIONS}
    unknown = sorted(set(candidates) - known)
    if unknown or not candidates:
        raise ValueError(f"unknown forecast candidate(s) {unknown}; known: {sorted(known)}")
    columns = _columns(levels)
    raw, times, step = regular_series(history)
    filled = fill_gaps(raw, DAY // step)
    tests = backtests(candidates, filled, raw, times, horizon, step)
    members: Sequence[str] = [candidate_models.DEFAULT]
    ranking: dict[str, float] = {}
    summary = None
    if tests is not None:
        members = list(selector(tests))
        ranking = {name: round(tests.mase(name), 4) for name in tests.forecasts}
        if summarise:
            summary = backtest_summary(tests, members, raw, filled, times, step, levels)
    yhat = combine(candidate_models.run(members, filled, times, horizon, step), members)
    _, profile, method = point_forecast(filled, times, horizon, step)
    floor = 0.0 if np.nanmin(raw) >= 0 else -np.inf
    yhat = np.maximum(yhat, floor)
    interval_method = "backtest"
    total_errors = None
    if tests is None:
        interval_method = "in-sample"
        ok = ~np.isnan(raw)
        errors, scale = raw[ok] - profile.at(times[ok]), 1.0
    else:
        errors, total_errors, relative = _window_errors(tests, members, float(np.nanmin(raw)))
        scale = float(yhat[: tests.window].mean()) if relative else 1.0
        if relative:
            interval_method = "backtest, relative"
    future = pd.date_range(times[-1] + step, periods=horizon, freq=step, name="hour")
    hourly = pd.DataFrame({"yhat": yhat}, index=future)
    for level, lo, hi in columns:
        q_lo, q_hi = np.quantile(errors, [(1 - level) / 2, (1 + level) / 2]) * scale
        hourly[lo] = np.maximum(yhat + q_lo, floor)
        hourly[hi] = np.maximum(yhat + q_hi, floor)
    rule = None
    if total_errors is not None and len(total_errors) >= MIN_BACKTESTS:
        # Overlapping windows share their errors: count the weeks they span, not the windows.
        count, window = len(total_errors), tests.window
        independent = min(count, ((count - 1) * tests.spacing + window) / window)
        rule = (total_errors, window, max(1.0, independent - 1))
    else:
        interval_method += ", totals from summed hourly bounds"
    sums = {span: _total(hourly.iloc[:span], columns, rule, floor) for span in spans}
    return Forecast(
        hourly, sums, method, interval_method, len(raw), label(members), ranking, summary
    )


def _t(level: float, dof: float) -> float:
    """Student's t quantile of a central interval `level`."""
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, dof))


def _total(
    hourly: pd.DataFrame,
    columns: list[tuple[float, str, str]],
    rule: tuple[np.ndarray, int, float] | None,
    floor: float,
) -> dict[str, float]:
    """A span's total and its intervals: from the backtests' relative total errors
    (`rule`: errors, window, degrees of freedom), else the sum of the hourly bounds."""
    import numpy as np

    total = {"yhat": float(hourly["yhat"].sum())}
    for level, lo, hi in columns:
        if rule is None:
            total[lo], total[hi] = float(hourly[lo].sum()), float(hourly[hi].sum())
            continue
        # Symmetric: a few overlapping windows cannot tell a lasting bias from a run of bad
        # luck. Student's t for their small number; sqrt(time) as a level error persists.
        errors, window, dof = rule
        rms = float(np.sqrt(np.mean(errors**2)))
        widen = math.sqrt(max(1.0, len(hourly) / window))
        spread = _t(level, dof) * rms * widen
        total[lo] = max(total["yhat"] * (1 - spread), floor)
        total[hi] = total["yhat"] * (1 + spread)
    return total


def forecast_series(
    history: pd.Series, horizon: int, levels: Sequence[float] = (0.8, 0.95)
) -> pd.DataFrame:
    """Hourly forecast with intervals: columns `yhat, lo80, hi80, lo95, hi95` (for the
    default levels) indexed by the next `horizon` hours (UTC). `attrs["method"]` and
    `attrs["interval_method"]` say how it was made. See `forecast` for the arguments."""
    result = forecast(history, horizon, levels)
    frame = result.hourly
    frame.attrs.update(method=result.method, interval_method=result.interval_method)
    return frame


def _future(times: pd.DatetimeIndex, step: dt.timedelta, horizon: int) -> pd.DatetimeIndex:
    import pandas as pd

    return pd.date_range(times[-1] + step, periods=horizon, freq=step, name="hour")


def mean_last_7d(history: pd.Series, horizon: int) -> pd.Series:
    """Baseline: the mean of the last 7 days of history (what there is of it), flat."""
    import numpy as np
    import pandas as pd

    raw, times, step = regular_series(history)
    level = float(np.nanmean(raw[-(WEEK // step) :]))
    return pd.Series(level, index=_future(times, step, horizon), name="yhat")


def seasonal_naive(history: pd.Series, horizon: int, season: int = 168) -> pd.Series:
    """Baseline: the last `season` steps repeated (gaps filled as the forecaster fills them).

    Raises:
        ValueError: the history is shorter than one season.
    """
    import numpy as np
    import pandas as pd

    raw, times, step = regular_series(history)
    if len(raw) < season:
        raise ValueError(f"seasonal naive needs {season} steps of history, got {len(raw)}")
    last = fill_gaps(raw, DAY // step)[-season:]
    return pd.Series(np.resize(last, horizon), index=_future(times, step, horizon), name="yhat")
