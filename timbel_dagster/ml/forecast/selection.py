"""Rolling-origin backtests inside a history, and the choice of forecast they make.

`backtests` re-runs every candidate from up to `BACKTESTS` = 14 origins `SPACING` = 2 days
apart, each forecasting a window (a week, or the horizon when shorter) that ends at or
before the end of the history; the oldest origin has two weeks of history before it when
at least 3 backtests still fit (then all candidates compete), else two days (then only
those that fit on so little: profile, profile-daily, mean7d). Nothing at or after the
forecast's origin is ever seen: the history is all `forecast` is given, and each candidate
is given only the history before its backtest origin.

`select_top` ranks the candidates by their mean MASE over the backtests (scale: the
one-day seasonal-naive error of the history before each backtest origin) and keeps the best
`TOP`; the forecast is their median, the kind of combination the M4 competition found
robust. `TOP` = 6, all of `candidates.ALL`, was chosen on design origins only: the 17 daily
origins 2013-07-26 to 08-11 of the Bitbrains cost trace (every forecast window ends by
08-18; each origin ranks on its own backtests); the choice read the design figures only
(each candidate's own figures on all 4 scored weeks were already in `candidates`). Mean
MASE there, median of the best 1 / 2 / 3 / 4 / 5 / 6: 0.784 / 0.789 / 0.781 / 0.764 /
0.749 / 0.740 (the mean of all six 0.742, weights 1 / backtest MASE 0.746); keeping those
within 1.1x / 1.3x / 1.5x of the best backtest MASE: 0.780 / 0.770 / 0.751; the number
kept chosen per origin by the same backtests: 0.788. The previous pool and rule
(Holt-Winters and a squared-error GBM, best 5 of 6) scored 0.762, the 7-day mean 0.818.
Two to five weeks of backtests rank close candidates almost at random here, so the ranking
is reported (`Forecast.ranking`) but every candidate is kept.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.forecast import candidates as candidate_models
from timbel_dagster.ml.forecast.profile import FLAT_BELOW_DAYS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BACKTESTS = 14
SPACING = 2  # days between backtest origins
MIN_BACKTESTS = 3
TOP = 6  # of the six in candidates.ALL: see the module docstring
SEASONAL_DAYS = 14  # the history the seasonal candidates need
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Backtests:
    """Every candidate's forecasts from each backtest origin, beside what happened.

    `forecasts[name]` and `actual` are (backtests x window) arrays (actual NaN where the
    history has a gap); `actual_times` the times of the actual values, `scales` the MASE
    scale of the history before each origin."""

    forecasts: dict[str, np.ndarray]
    actual: np.ndarray
    actual_times: list[pd.DatetimeIndex]
    scales: np.ndarray
    window: int
    spacing: int  # steps between origins

    def mase(self, name: str) -> float:
        """Mean over backtests of the candidate's MASE."""
        import numpy as np

        errors = np.abs(self.forecasts[name] - self.actual)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all NaN: an unknown score
            return float(np.nanmean(np.nanmean(errors, axis=1) / self.scales))


Selector = Callable[[Backtests], Sequence[str]]


def _scale(raw: np.ndarray, season: int) -> float:
    import numpy as np

    diffs = np.abs(raw[season:] - raw[:-season])
    return float(np.nanmean(diffs)) if len(diffs) and not np.isnan(diffs).all() else np.nan


def backtests(
    names: Sequence[str],
    filled: np.ndarray,
    raw: np.ndarray,
    times: pd.DatetimeIndex,
    horizon: int,
    step: dt.timedelta,
) -> Backtests | None:
    """The candidates' backtests inside the history; None when fewer than
    `MIN_BACKTESTS` fit (the profile needs `FLAT_BELOW_DAYS` before the first origin)."""
    import numpy as np

    per_day = DAY // step
    spacing = SPACING * per_day
    n = len(filled)
    # Oldest origin first at two weeks of history (every candidate fits), else at two days.
    for window, before in (
        (min(horizon, 7 * per_day), SEASONAL_DAYS),
        (min(horizon, 7 * per_day), FLAT_BELOW_DAYS),
        (min(horizon, per_day), FLAT_BELOW_DAYS),
    ):
        count = min(BACKTESTS, (n - window - before * per_day) // spacing + 1)
        if count >= MIN_BACKTESTS:
            break
    else:
        return None
    origins = [n - window - j * spacing for j in range(count)][::-1]  # oldest first
    # Candidates that the shortest backtest history can fit, so every one is scored on all.
    usable = candidate_models.available(names, origins[0], step) or [candidate_models.DEFAULT]
    forecasts: dict[str, list[np.ndarray]] = {name: [] for name in usable}
    for origin in origins:
        runs = candidate_models.run(usable, filled[:origin], times[:origin], window, step)
        for name in usable:
            forecasts[name].append(runs[name])
    return Backtests(
        forecasts={name: np.vstack(rows) for name, rows in forecasts.items()},
        actual=np.vstack([raw[o : o + window] for o in origins]),
        actual_times=[times[o : o + window] for o in origins],
        scales=np.array([_scale(raw[:o], per_day) for o in origins]),
        window=window,
        spacing=spacing,
    )


def select_top(tests: Backtests, top: int = TOP) -> list[str]:
    """The `top` candidates with the lowest mean backtest MASE, best first (ties by name)."""
    ranked = sorted(tests.forecasts, key=lambda name: (_nan_last(tests.mase(name)), name))
    return ranked[:top]


def _nan_last(value: float) -> float:
    return value if value == value else float("inf")


def combine(forecasts: dict[str, np.ndarray], members: Sequence[str]) -> np.ndarray:
    """The median of the members' forecasts (arrays of the same shape)."""
    import numpy as np

    return np.median(np.stack([forecasts[m] for m in members]), axis=0)


def label(members: Sequence[str]) -> str:
    """How a forecast was made, e.g. `median(profile, gbm, mstl)` or `profile`."""
    return members[0] if len(members) == 1 else f"median({', '.join(members)})"


def backtest_summary(
    tests: Backtests,
    members: Sequence[str],
    raw: np.ndarray,
    filled: np.ndarray,
    times: pd.DatetimeIndex,
    step: dt.timedelta,
    levels: Sequence[float],
) -> dict[str, Any]:
    """The chosen forecast in its backtests beside the two baselines from the same origins
    (`raw`: the history with its gaps, `filled`: with them filled, as seasonal naive fills).

    Returns:
        `backtests`, `window_steps`, `first_origin`, `last_origin`; mean MASE (each
        backtest's scale) of the forecast (`mase`), of the last-7-days mean
        (`baseline_mean7d_mase`) and of seasonal naive with a weekly season
        (`baseline_seasonal_naive_mase`, None when no origin has a week before it); and
        per level, e.g. `coverage80`: the share of backtest steps inside an interval built
        only from the errors of backtest windows that ended before that window's origin
        (None when no window has two such earlier windows), over `coverage_windows` windows.
    """
    import numpy as np

    predicted = combine(tests.forecasts, members)
    origins = [int(times.get_loc(t[0])) for t in tests.actual_times]
    season = 7 * DAY // step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a week of gaps: an unknown mean
        mean7 = np.vstack(
            [np.full(tests.window, np.nanmean(raw[max(0, o - season) : o])) for o in origins]
        )
    naive = np.vstack(
        [
            np.resize(filled[o - season : o], tests.window)
            if o >= season
            else np.full(tests.window, np.nan)
            for o in origins
        ]
    )

    def mase(forecasts: np.ndarray) -> float | None:
        errors = np.abs(forecasts - tests.actual)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(np.nanmean(np.nanmean(errors, axis=1) / tests.scales))
        return None if value != value else round(value, 4)

    means = predicted.mean(axis=1, keepdims=True)
    relative = bool(np.nanmin(raw) >= 0 and (means > 0).all())
    errors = (tests.actual - predicted) / (means if relative else 1.0)
    coverage: dict[str, float | None] = {}
    windows = 0
    for level in levels:
        inside = total = 0
        windows = 0
        for j, origin in enumerate(origins):
            prior = [i for i, o in enumerate(origins) if o + tests.window <= origin]
            pooled = errors[prior][~np.isnan(errors[prior])]
            actual = tests.actual[j]
            ok = ~np.isnan(actual)
            if len(prior) < 2 or not ok.any():
                continue
            low, high = np.quantile(pooled, [(1 - level) / 2, (1 + level) / 2])
            scale = float(means[j, 0]) if relative else 1.0
            lo, hi = predicted[j] + low * scale, predicted[j] + high * scale
            inside += int(((actual >= lo) & (actual <= hi))[ok].sum())
            total += int(ok.sum())
            windows += 1
        coverage[f"coverage{round(level * 100)}"] = round(inside / total, 4) if total else None
    return {
        "backtests": len(origins),
        "window_steps": tests.window,
        "first_origin": times[origins[0]],
        "last_origin": times[origins[-1]],
        "mase": mase(predicted),
        "baseline_mean7d_mase": mase(mean7),
        "baseline_seasonal_naive_mase": mase(naive),
        **coverage,
        "coverage_windows": windows,
    }
