"""The profile forecaster, one of the candidates of `candidates.py`: a level times a
seasonal profile. It is also what a history too short for backtests gets. Its constants
(k = 4, decay 0.9) were chosen earlier on rolling origins that included the Bitbrains weeks
now scored; since issue 16 they are no longer the last word: `selection.py` ranks it beside
the other candidates on each history's own backtests (`profile-daily` is its hour-of-day
variant with decay 0.95, what the first 34 days alone preferred).

Works on a regular series given as a numpy array and its timestamps (UTC), for any step that
divides a day (5 min, 1 h, 1 day). "Hour of day" below means the step's slot within the day.

- Gaps: a missing value takes the one a week earlier, else a day earlier, else linear
  interpolation (`fill_gaps`).
- Level: the mean of the last 7 days (of the whole days there are, when fewer).
- Shape: each value's ratio to its centred 7-day moving average; the median ratio per
  day-of-week and hour-of-day, shrunk toward the median per hour-of-day with weight
  k / (weeks + k), k = 4 (the more weeks seen, the more the weekly shape is trusted), then
  normalised to a mean of 1 over a week so that a week's forecast total is 7 days at the
  level. Differences replace ratios when the series goes negative.
- Short term: the mean residual of the last 6 hours, decaying by a factor 0.9 per hour.

Tiers by history length: under 2 days `flat-mean` (the mean of the last whole day, or of
all the history under a day), under 14 days `daily-profile` (hour-of-day shape only), else
`weekly-profile`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
SHRINK_WEEKS = 4.0  # k in k / (weeks + k)
PROFILE_WEEKS = 6  # how much history the shape is estimated from
AR_DECAY_PER_HOUR = 0.9
AR_WINDOW = dt.timedelta(hours=6)
FLAT_BELOW_DAYS = 2
WEEKLY_FROM_DAYS = 14


def fill_gaps(values: np.ndarray, steps_per_day: int) -> np.ndarray:
    """Missing values from a week earlier, else a day earlier, else interpolated."""
    import numpy as np

    out = values.astype(float)
    for lag in (7 * steps_per_day, steps_per_day):
        missing = np.flatnonzero(np.isnan(out))
        # Forward in time, so a gap longer than the lag takes already-filled values.
        for i in missing[missing >= lag]:
            out[i] = out[i - lag]
    missing = np.isnan(out)
    if missing.all():
        return out
    if missing.any():
        known = np.flatnonzero(~missing)
        out[missing] = np.interp(np.flatnonzero(missing), known, out[known])
    return out


def tier(n_steps: int, steps_per_day: int) -> str:
    """Which method a history of `n_steps` values gets."""
    if n_steps < FLAT_BELOW_DAYS * steps_per_day:
        return "flat-mean"
    if n_steps < WEEKLY_FROM_DAYS * steps_per_day:
        return "daily-profile"
    return "weekly-profile"


@dataclass(frozen=True)
class Profile:
    """A fitted level and shape; `at(times)` evaluates it at any timestamps."""

    level: float
    weekly: np.ndarray  # 7 x steps_per_day, NaN where never observed
    daily: np.ndarray  # steps_per_day
    shrink: float  # weight of the daily shape
    multiplicative: bool
    norm: float  # the shape's mean over a week
    step: dt.timedelta
    steps_per_day: int

    def shape(self, times: pd.DatetimeIndex) -> np.ndarray:
        import numpy as np

        slots, days = _calendar(times, self.step)
        weekly = self.weekly[days * self.steps_per_day + slots]
        daily = self.daily[slots]
        return np.where(np.isnan(weekly), daily, (1 - self.shrink) * weekly + self.shrink * daily)

    def at(self, times: pd.DatetimeIndex) -> np.ndarray:
        if self.multiplicative:
            return self.level * self.shape(times) / self.norm
        return self.level + self.shape(times) - self.norm


def _calendar(times: pd.DatetimeIndex, step: dt.timedelta) -> tuple[np.ndarray, np.ndarray]:
    """Slot within the day and day of week (Monday 0) of UTC times, in integer arithmetic:
    pandas' calendar accessors cost more than the rest of a forecast."""
    ns = times.as_unit("ns").asi8
    day = 86_400 * 10**9
    slots = (ns % day) // (step // dt.timedelta(microseconds=1) * 1000)
    days = (ns // day + 3) % 7  # 1970-01-01 was a Thursday
    return slots, days


def _medians(keys: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    import numpy as np
    import pandas as pd

    ok = ~np.isnan(values)
    medians = pd.Series(values[ok]).groupby(keys[ok]).median()
    out = np.full(size, np.nan)
    out[medians.index.to_numpy(dtype=int)] = medians.to_numpy()
    return out


def fit_profile(
    values: np.ndarray,
    times: pd.DatetimeIndex,
    step: dt.timedelta,
    steps_per_day: int,
    daily_only: bool = False,
) -> Profile:
    """Fit level and shape to a gap-filled history (the tier follows from its length;
    `daily_only` keeps to the hour-of-day shape whatever the length)."""
    import numpy as np
    import pandas as pd

    n = len(values)
    method = tier(n, steps_per_day)
    days = min(7, n // steps_per_day)
    level = float(values[-days * steps_per_day :].mean()) if days else float(values.mean())
    neutral = np.zeros(steps_per_day)
    if method == "flat-mean":
        return Profile(level, np.full(7 * steps_per_day, np.nan), neutral, 1.0, False, 0.0,
                       step, steps_per_day)  # fmt: skip
    week = 7 * steps_per_day
    base = pd.Series(values).rolling(week, min_periods=steps_per_day, center=True).mean().to_numpy()
    recent = slice(max(0, n - PROFILE_WEEKS * week), n)
    multiplicative = bool(values.min() >= 0)
    if multiplicative:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(base[recent] > 0, values[recent] / base[recent], np.nan)
    else:
        ratios = values[recent] - base[recent]
    stamps = times[recent]
    slots, days = _calendar(stamps, step)
    daily = _medians(slots, ratios, steps_per_day)
    daily = np.where(np.isnan(daily), 1.0 if multiplicative else 0.0, daily)
    if method == "weekly-profile" and not daily_only:
        weekly = _medians(days * steps_per_day + slots, ratios, week)
        weeks = (recent.stop - recent.start) / week
        shrink = SHRINK_WEEKS / (weeks + SHRINK_WEEKS)
    else:
        weekly, shrink = np.full(week, np.nan), 1.0
    profile = Profile(level, weekly, daily, shrink, multiplicative, 1.0, step, steps_per_day)
    a_week = pd.date_range("2024-01-01", periods=week, freq=step, tz="UTC")  # a Monday
    norm = float(profile.shape(a_week).mean())
    if multiplicative and not norm > 0:
        return Profile(level, weekly, neutral, 1.0, False, 0.0, step, steps_per_day)
    return Profile(level, weekly, daily, shrink, multiplicative, norm, step, steps_per_day)


def point_forecast(
    values: np.ndarray,
    times: pd.DatetimeIndex,
    horizon: int,
    step: dt.timedelta,
    daily_only: bool = False,
    decay_per_hour: float = AR_DECAY_PER_HOUR,
) -> tuple[np.ndarray, Profile, str]:
    """Forecast `horizon` steps after a gap-filled history; also the profile and tier.
    `daily_only` and `decay_per_hour` make the `profile-daily` candidate."""
    import numpy as np
    import pandas as pd

    steps_per_day = DAY // step
    profile = fit_profile(values, times, step, steps_per_day, daily_only)
    method = tier(len(values), steps_per_day)
    future = pd.date_range(times[-1] + step, periods=horizon, freq=step)
    forecast = profile.at(future)
    if method != "flat-mean":
        window = max(1, AR_WINDOW // step)
        residual = float((values[-window:] - profile.at(times[-window:])).mean())
        decay = decay_per_hour ** (step / HOUR)
        forecast = forecast + residual * decay ** np.arange(1, horizon + 1)
    return forecast, profile, method
