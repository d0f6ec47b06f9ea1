"""Candidate point forecasters that `series.forecast` chooses among by rolling-origin backtests.

Each takes a gap-filled history (numpy values and their UTC times, a regular `step`) and
returns `horizon` values; each sees only the history it is given, so a backtest that cuts the
history at an origin cannot leak what came after it. They are the usual methods for hourly
load with daily and weekly seasonality, each kept to well under a second per fit:

- `profile`: the level-times-shape forecaster of `profile.py` (day-of-week shape shrunk to
  hour of day, 6-hour correction decaying 0.9 per hour).
- `profile-daily`: the same with the hour-of-day shape only and a slower decay (0.95).
- `mean7d`: the mean of the last 7 days, flat (the baseline, as a candidate).
- `mstl`: MSTL (statsmodels; periods one day and one week, on the last 6 weeks); the
  seasonally adjusted series is forecast by simple exponential smoothing (ETS(A,N,N)), the
  seasonal part is the last week of both components repeated.
- `holt-winters`: additive Holt-Winters with a damped trend and a weekly season
  (heuristic initialisation, on the last 6 weeks).
- `seasonal-2w`: each hour of the week, the mean of that hour in the last 2 weeks (seasonal
  naive with half its noise; 3 weeks' median scored worse on the design origins of
  `selection`, 0.826 against 0.749).
- `gbm`: scikit-learn's HistGradientBoostingRegressor with absolute-error loss (a conditional
  median: MASE is an absolute error and this trace's hours are bimodal, idle or busy), direct
  multi-step: one row per (training origin, lead), with the target and the features as ratios
  to the median of the week before the origin; features are the hour of day, day of week,
  lead, the values a whole number of weeks and of days before the target (always before the
  origin), the medians of the last day and 3 days, the mean of the last 6 hours and of the
  last week before the origin. Training origins every 12 hours over the last 6 weeks, only
  those whose targets are in the history. One thread (OpenMP threads fight on small
  machines: 0.5 s instead of 4-19 s per fit on 2 busy cores).
- `combination`: the median of profile, profile-daily, mstl, holt-winters and gbm;
  `mean-combination` their mean. Not in the default pool: `selection` already forecasts the
  median of the best-ranked candidates (how many: `selection.TOP`).

Candidates that need more history than there is (two weeks for the seasonal models, at
most hourly steps) are left out by `available`.

Measured alone on the 4 scored Bitbrains weeks (cost, one week ahead; mean MASE / weekly
total error): profile 0.970 / 17.6 %, profile-daily 1.004 / 20.7 %, mean7d 1.108 / 17.0 %,
seasonal-2w 1.077 / 24.5 %, mstl 1.184 / 19.6 %, holt-winters 1.389 / 36.5 %, gbm
1.013 / 10.8 % (0.756 over the 17 design origins of `selection`, where the squared-error
GBM before it scored 0.764); no single one is best in every week, which is why `selection`
combines. A fit takes 5 ms to 2 s (MSTL the slowest) on 6 weeks of hourly history, on a busy
2-core machine.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from timbel_dagster.ml.forecast.profile import _calendar, point_forecast

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Candidate = Callable[["np.ndarray", "pd.DatetimeIndex", int, dt.timedelta], "np.ndarray"]
DAY = dt.timedelta(days=1)
RECENT_WEEKS = 6
GBM_ORIGIN_EVERY = dt.timedelta(hours=12)
SEASONAL_WEEKS = 2
COMBINED = ("profile", "profile-daily", "mstl", "holt-winters", "gbm")
FAST = ("profile", "profile-daily", "mean7d")  # numpy only: milliseconds per fit
# The default pool `selection` ranks. Holt-Winters is left out (by name only): it ranked last
# at 13 of the 17 design origins (see `selection`) and cost a third of the run time.
ALL = (*FAST, "seasonal-2w", "mstl", "gbm")
COMBINATIONS = ("combination", "mean-combination")  # by name only: see `selection.TOP`
DEFAULT = "profile"


def _per_day(step: dt.timedelta) -> int:
    return DAY // step


def profile(values: np.ndarray, times: pd.DatetimeIndex, horizon: int, step: dt.timedelta):
    return point_forecast(values, times, horizon, step)[0]


def profile_daily(values: np.ndarray, times: pd.DatetimeIndex, horizon: int, step: dt.timedelta):
    return point_forecast(values, times, horizon, step, daily_only=True, decay_per_hour=0.95)[0]


def mean7d(values: np.ndarray, times: pd.DatetimeIndex, horizon: int, step: dt.timedelta):
    import numpy as np

    return np.full(horizon, float(np.mean(values[-7 * _per_day(step) :])))


def _recent(values: np.ndarray, step: dt.timedelta) -> np.ndarray:
    return values[-RECENT_WEEKS * 7 * _per_day(step) :]


def mstl(values: np.ndarray, times: pd.DatetimeIndex, horizon: int, step: dt.timedelta):
    import numpy as np
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing
    from statsmodels.tsa.seasonal import MSTL

    per_day = _per_day(step)
    week = 7 * per_day
    recent = _recent(values, step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seasonal = np.asarray(MSTL(recent, periods=(per_day, week)).fit().seasonal)
        # MSTL drops a period the history does not hold twice over: then one column.
        seasonal = seasonal.reshape(len(recent), -1).sum(axis=1)
        adjusted = recent - seasonal
        level = SimpleExpSmoothing(adjusted, initialization_method="estimated").fit()
    return level.forecast(horizon) + np.resize(seasonal[-week:], horizon)


def holt_winters(values: np.ndarray, times: pd.DatetimeIndex, horizon: int, step: dt.timedelta):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    recent = _recent(values, step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(
            recent,
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=7 * _per_day(step),
            initialization_method="heuristic",
        ).fit()
    return model.forecast(horizon)


def _gbm_rows(
    values: np.ndarray, slots: np.ndarray, days: np.ndarray, origin: int, leads: np.ndarray,
    per_day: int,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """Features of (origin, lead) rows from values before `origin` only, and the scale;
    `slots` and `days` cover the history and the forecast horizon."""
    import numpy as np

    week = 7 * per_day
    before = values[origin - week : origin]
    # The median, not the mean: a few hours of a batch burst should not rescale a week.
    scale = float(np.median(before))
    scale = scale if scale > 0 else 1.0
    target = origin + leads - 1
    # Whole weeks and whole days back from the target, always before the origin.
    week_lag = target - week * np.ceil(leads / week).astype(int)
    day_lag = target - per_day * np.ceil(leads / per_day).astype(int)

    def flat(value: float) -> np.ndarray:
        return np.full(len(leads), value / scale)

    features = np.column_stack(
        [
            slots[target],
            days[target],
            leads,
            values[week_lag] / scale,
            values[day_lag] / scale,
            flat(np.median(values[origin - per_day : origin])),
            flat(np.median(values[origin - 3 * per_day : origin])),
            flat(np.mean(values[origin - max(1, per_day // 4) : origin])),
            flat(np.mean(before)),
        ]
    )
    return features, scale


def gbm(values: np.ndarray, times: pd.DatetimeIndex, horizon: int, step: dt.timedelta):
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    per_day = _per_day(step)
    week = 7 * per_day
    n = len(values)
    future = pd.date_range(times[-1] + step, periods=horizon, freq=step)
    slots, days = _calendar(times.append(future), step)
    every = max(1, GBM_ORIGIN_EVERY // step)
    first = max(week, n - RECENT_WEEKS * week)
    rows, targets = [], []
    for origin in range(n - every // 2, first - 1, -every):
        leads = np.arange(1, min(horizon, n - origin) + 1)
        features, scale = _gbm_rows(values, slots, days, origin, leads, per_day)
        rows.append(features)
        targets.append(values[origin + leads - 1] / scale)
    features, scale = _gbm_rows(values, slots, days, n, np.arange(1, horizon + 1), per_day)
    # Absolute-error loss: a conditional median, what MASE (an absolute error) rewards.
    model = HistGradientBoostingRegressor(
        loss="absolute_error", max_iter=100, learning_rate=0.05, max_leaf_nodes=15,
        min_samples_leaf=40, categorical_features=[0, 1], random_state=0,
    )  # fmt: skip
    with threadpool_limits(1):
        model.fit(np.vstack(rows), np.concatenate(targets))
        return model.predict(features) * scale


def seasonal_2w(values: np.ndarray, times: pd.DatetimeIndex, horizon: int, step: dt.timedelta):
    """Each step of the week: the mean of that step in the last `SEASONAL_WEEKS` weeks."""
    import numpy as np

    week = 7 * _per_day(step)
    recent = values[-SEASONAL_WEEKS * week :].reshape(-1, week)
    # The rows start a whole number of weeks before the origin: column 0 is its step.
    return np.resize(recent.mean(axis=0), horizon)


BASE: dict[str, Candidate] = {
    "profile": profile,
    "profile-daily": profile_daily,
    "mean7d": mean7d,
    "mstl": mstl,
    "holt-winters": holt_winters,
    "gbm": gbm,
    "seasonal-2w": seasonal_2w,
}
NEEDS_WEEKS = {"mstl": 2, "holt-winters": 2, "gbm": 2, "seasonal-2w": SEASONAL_WEEKS}


def available(names: Sequence[str], n_steps: int, step: dt.timedelta) -> list[str]:
    """The candidates among `names` that a history of `n_steps` can fit: the seasonal ones
    need two weeks, and at most hourly steps (a week of 5-minute steps is 2,016 states)."""
    per_day = _per_day(step)
    weeks = n_steps / (7 * per_day)
    out = []
    for name in names:
        needed = NEEDS_WEEKS.get(name, 0)
        if name in COMBINATIONS:
            needed = max(NEEDS_WEEKS.values())
        if needed and (weeks < needed or per_day > 24 or per_day < 2):
            continue
        out.append(name)
    return out


def run(
    names: Sequence[str],
    values: np.ndarray,
    times: pd.DatetimeIndex,
    horizon: int,
    step: dt.timedelta,
    extra: dict[str, Candidate] | None = None,
) -> dict[str, np.ndarray]:
    """Forecasts of each named candidate (combinations from their members' forecasts, each
    member fitted once). `extra` adds candidates by name (tests use it to spy)."""
    import numpy as np

    table = BASE | (extra or {})
    wanted = list(names)
    combos = [n for n in wanted if n in COMBINATIONS]
    fit = [n for n in wanted if n not in combos] + (
        [m for m in COMBINED if m not in wanted] if combos else []
    )
    out = {name: np.asarray(table[name](values, times, horizon, step), float) for name in fit}
    members = np.vstack([out[m] for m in COMBINED]) if combos else None
    for name in combos:
        out[name] = np.median(members, axis=0) if name == "combination" else members.mean(0)
    return {name: out[name] for name in wanted}
