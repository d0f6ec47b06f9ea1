"""The forecaster, its baselines and metrics, its evaluation on Bitbrains, and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import missing_service
from tests.ml.bitbrains import BITBRAINS, bitbrains_cost_series
from timbel_dagster.cli.app import main
from timbel_dagster.ml.forecast.candidates import ALL, BASE, COMBINATIONS, FAST, _gbm_rows, run
from timbel_dagster.ml.forecast.eval import (
    evaluate_csv,
    evaluate_series,
    hindsight_daily_shape,
    mase,
    mase_scale,
    total_error_pct,
)
from timbel_dagster.ml.forecast.selection import Backtests, select_top
from timbel_dagster.ml.forecast.series import (
    forecast,
    forecast_series,
    mean_last_7d,
    regular_series,
    seasonal_naive,
)

START = pd.Timestamp("2026-01-05", tz="UTC")  # a Monday


def hourly(values, start: pd.Timestamp = START) -> pd.Series:
    return pd.Series(
        np.asarray(values, dtype=float),
        index=pd.date_range(start, periods=len(values), freq="1h"),
    )


def synthetic(seed: int, weeks: int) -> tuple[pd.Series, np.ndarray]:
    """A daily sine, quieter weekends, and N(0, 1) noise; also the noise-free shape."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=weeks * 168, freq="1h")
    shape = 10 * (1 + 0.3 * np.sin(2 * np.pi * times.hour.to_numpy() / 24))
    shape = shape * np.where(times.day_of_week >= 5, 0.7, 1.0)
    return pd.Series(shape + rng.normal(0, 1, len(times)), index=times), shape


def bitbrains() -> Path:
    if not BITBRAINS.is_file():
        missing_service(f"the Bitbrains trace is missing at {BITBRAINS}")
    return BITBRAINS


# -- baselines and metrics, exact values ------------------------------------------------------


def test_mean_of_the_last_7_days_is_flat() -> None:
    history = hourly([100.0] * 24 + list(range(168)))  # the first day is older than 7 days
    forecast = mean_last_7d(history, 3)
    assert forecast.tolist() == [83.5, 83.5, 83.5]
    assert forecast.index[0] == history.index[-1] + pd.Timedelta(hours=1)


def test_mean_of_the_last_7_days_of_a_short_history() -> None:
    assert mean_last_7d(hourly([1.0, np.nan, 5.0]), 2).tolist() == [3.0, 3.0]


def test_seasonal_naive_repeats_the_last_season() -> None:
    history = hourly([9, 9, 1, 2, 3])
    assert seasonal_naive(history, 7, season=3).tolist() == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ValueError, match="needs 168 steps of history, got 5"):
        seasonal_naive(history, 1)


def test_seasonal_naive_fills_a_gap_from_a_day_earlier() -> None:
    values = list(range(48))
    values[40] = np.nan
    assert seasonal_naive(hourly(values), 24, season=24).iloc[16] == 16.0


@pytest.mark.parametrize(
    ("history", "season", "scale"),
    [
        ([1, 2, 4, 7], 1, (1 + 2 + 3) / 3),
        ([1, 5, 2, 8, 3], 2, (1 + 3 + 1) / 3),
        ([4, 4], 2, float("nan")),  # no pair a season apart
    ],
)
def test_mase_scale(history: list[float], season: int, scale: float) -> None:
    assert mase_scale(np.array(history, dtype=float), season) == pytest.approx(scale, nan_ok=True)


def test_mase_and_total_error() -> None:
    actual, forecast = np.array([10.0, 20.0, 30.0]), np.array([12.0, 18.0, 27.0])
    assert mase(actual, forecast, scale=2.0) == pytest.approx((2 + 2 + 3) / 3 / 2)
    assert total_error_pct(actual, forecast) == pytest.approx(3 / 60 * 100)
    assert np.isnan(mase(actual, forecast, scale=0.0))
    assert np.isnan(mase_scale(np.array([1.0, np.nan, 3.0]), 1))


def test_mase_scale_skips_pairs_with_a_gap() -> None:
    assert mase_scale(np.array([1.0, np.nan, 3.0, 6.0]), 1) == 3.0


def test_evaluation_scores_the_baselines_by_hand() -> None:
    """Days alternate 0 and 2 for two weeks, then a day of 2: the MASE scale (one-day
    season) is 2, the last 7 days average 8/7, a week before the day ahead was 2."""
    values = ([0.0] * 24 + [2.0] * 24) * 7 + [2.0] * 24
    result = evaluate_series(hourly(values), horizon=24, origins=1)
    assert result["n_origins"] == 1 and result["mase_season_steps"] == 24
    assert result["per_origin"][0]["scale"] == 2.0
    assert result["baseline_mean7d_mase"] == pytest.approx((2 - 8 / 7) / 2, abs=1e-4)
    assert result["baseline_mean7d_weekly_total_error_pct"] == pytest.approx(
        (48 - 24 * 8 / 7) / 48 * 100, abs=1e-4
    )
    assert result["baseline_seasonal_naive_mase"] == 0.0
    assert result["baseline_seasonal_naive_weekly_total_error_pct"] == 0.0
    # A one-day horizon holds each hour once: its own "median" would score 0, so no bound.
    assert result["hindsight_daily_shape_mase"] is None
    assert result["per_origin"][0]["hindsight_daily_shape_mase"] is None
    assert result["per_origin"][0]["hindsight_steps"] == 0
    assert set(result) >= {"mase", "weekly_total_error_pct", "coverage80", "coverage95"}


def test_the_hindsight_bound_is_each_time_of_day_s_median_over_the_horizon() -> None:
    """Two days: hour h is h on the first and h + 2 on the second (one hour missing), so the
    bound forecasts h + 1 and misses every value by 1; the gap's hour has one value left,
    whose median would be itself: no bound there."""
    times = pd.date_range("2026-01-05", periods=48, freq="1h", tz="UTC")
    actual = np.array([*range(24), *(h + 2.0 for h in range(24))], dtype=float)
    actual[30] = np.nan
    shape = hindsight_daily_shape(actual, times)
    expected = np.array([h + 1.0 for h in range(24)] * 2)
    expected[[6, 30]] = np.nan
    np.testing.assert_array_equal(shape, expected)
    # Through the evaluation: a horizon whose days repeat exactly is all shape, bound 0.
    values = ([0.0] * 24 + [2.0] * 24) * 7 + [float(h % 5) for h in range(24)] * 4
    result = evaluate_series(hourly(values), horizon=96, origins=1)
    assert result["hindsight_daily_shape_mase"] == 0.0
    assert result["per_origin"][0]["hindsight_daily_shape_mase"] == 0.0
    # A 36-hour horizon holds 12 hours twice, 12 once: scored over the 24 steps of the 12.
    shifted = values[:-72] + [float(h % 3) for h in range(24)] + [9.0] * 12
    partial = evaluate_series(hourly(shifted), horizon=36, origins=1)["per_origin"][0]
    # Hours 0-11 are h % 3 then 9: the median misses each by (9 - h % 3) / 2, 4.0 on average;
    # the scale is 652 / 336 (312 day-to-day steps of 2, then |h % 5 - 2| over a day: 28).
    assert partial["hindsight_steps"] == 24
    assert partial["hindsight_daily_shape_mase"] == pytest.approx(4.0 / (652 / 336), abs=1e-4)


# -- the forecaster --------------------------------------------------------------------------


def test_forecast_frame_and_intervals() -> None:
    history, _ = synthetic(seed=1, weeks=5)
    frame = forecast_series(history, 168)
    assert list(frame.columns) == ["yhat", "lo80", "hi80", "lo95", "hi95"]
    assert len(frame) == 168 and str(frame.index.tz) == "UTC"
    assert frame.index[0] == history.index[-1] + pd.Timedelta(hours=1)
    assert (frame["lo95"] <= frame["lo80"]).all() and (frame["lo80"] <= frame["yhat"]).all()
    assert (frame["yhat"] <= frame["hi80"]).all() and (frame["hi80"] <= frame["hi95"]).all()
    assert frame.attrs == {"method": "weekly-profile", "interval_method": "backtest, relative"}


def test_a_clean_daily_pattern_is_learnt() -> None:
    times = pd.date_range(START, periods=6 * 168, freq="1h")
    shape = 10 * (1 + 0.3 * np.sin(2 * np.pi * times.hour.to_numpy() / 24))
    frame = forecast_series(pd.Series(shape, index=times).iloc[:-168], 168)
    assert frame["yhat"].to_numpy() == pytest.approx(shape[-168:], rel=1e-3)


def test_weekends_are_shrunk_toward_the_daily_shape() -> None:
    """With 5 weeks of history the day-of-week shape weighs 5 / (5 + 4): the clean weekend
    (0.7 of a weekday) comes out between the weekly and the daily shapes."""
    series, shape = synthetic(seed=0, weeks=6)
    clean = pd.Series(shape, index=series.index)
    frame = forecast(clean.iloc[:-168], 168, candidates=("profile",)).hourly
    ratio = frame["yhat"].to_numpy() / shape[-168:]
    weekend = frame.index.day_of_week >= 5
    assert (ratio[~weekend] < 1).all() and (ratio[weekend] > 1).all()
    assert ratio.min() > 0.85 and ratio.max() < 1.25


def test_intervals_cover_a_seasonal_future_with_noise() -> None:
    """Fixed seeds, so the figures are fixed; nominal 80 % and 95 %, measured 77.8 % and
    93.6 % per hour and 77.5 % and 92.5 % for the week's total over these 40 series (the
    fast candidates, chosen by backtest)."""
    hours80, hours95, totals80, totals95 = [], [], [], []
    for seed in range(40):
        series, _ = synthetic(seed, weeks=7)
        history, actual = series.iloc[:-168], series.iloc[-168:].to_numpy()
        result = forecast(history, 168, candidates=FAST)
        frame = result.hourly
        hours80.append(np.mean((actual >= frame["lo80"]) & (actual <= frame["hi80"])))
        hours95.append(np.mean((actual >= frame["lo95"]) & (actual <= frame["hi95"])))
        total = result.total
        totals80.append(total["lo80"] <= actual.sum() <= total["hi80"])
        totals95.append(total["lo95"] <= actual.sum() <= total["hi95"])
    assert 0.75 <= np.mean(hours80) <= 0.92
    assert 0.9 <= np.mean(hours95) <= 0.995
    assert 0.7 <= np.mean(totals80) <= 0.95
    assert np.mean(totals95) >= 0.88


@pytest.mark.parametrize(
    ("hours", "method", "interval_method"),
    [
        (1, "flat-mean", "in-sample, totals from summed hourly bounds"),
        (30, "flat-mean", "in-sample, totals from summed hourly bounds"),
        (24 * 5, "daily-profile", "in-sample, totals from summed hourly bounds"),
        (24 * 7, "daily-profile", "backtest, relative"),
        (24 * 13, "daily-profile", "backtest, relative"),
        (24 * 14, "weekly-profile", "backtest, relative"),
    ],
)
def test_short_histories_fall_back_to_simpler_methods(
    hours: int, method: str, interval_method: str
) -> None:
    series, _ = synthetic(seed=3, weeks=3)
    result = forecast(series.iloc[:hours], 720, totals=(168,))
    assert (result.method, result.interval_method) == (method, interval_method)
    assert result.history_steps == hours
    assert len(result.hourly) == 720 and set(result.totals) == {168, 720}
    assert result.totals[168]["yhat"] == pytest.approx(result.hourly["yhat"].iloc[:168].sum())
    if method == "flat-mean":
        assert result.hourly["yhat"].nunique() == 1
        # The last whole day, so that the hour it ends at does not tilt the level.
        level = series.iloc[:hours].iloc[-24:].mean()
        assert result.hourly["yhat"].iloc[0] == pytest.approx(level)


def test_gaps_and_naive_times_are_handled() -> None:
    series, _ = synthetic(seed=4, weeks=3)
    series.iloc[100:130] = np.nan
    series = series.drop(series.index[200:210]).tz_localize(None)  # missing rows, naive times
    frame = forecast_series(series, 24)
    assert frame["yhat"].notna().all() and str(frame.index.tz) == "UTC"


def test_a_series_never_below_zero_gets_no_negative_bounds() -> None:
    rng = np.random.default_rng(5)
    sparse = hourly(np.where(rng.random(24 * 21) < 0.1, rng.exponential(5, 24 * 21), 0.0))
    frame = forecast_series(sparse, 168)
    assert (frame.min() >= 0).all()


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (pd.Series([1.0, 2.0]), "pandas Series with a DatetimeIndex"),
        (hourly([np.nan, np.nan]), "history has no values"),
        (hourly([1.0, 2.0]).iloc[::-1], "not in increasing order"),
        (pd.concat([hourly([1.0]), hourly([2.0])]), "duplicated timestamps"),
        (
            pd.Series(
                [1.0, 2.0, 3.0],
                index=pd.to_datetime(
                    ["2026-01-01 00:00", "2026-01-01 01:00", "2026-01-01 01:45"], utc=True
                ),
            ),
            "not on a regular 0:45:00 grid",
        ),
        (
            pd.Series([1.0, 2.0], index=pd.to_datetime(["2026-01-01 00:00", "2026-01-01 07:00"])),
            "step 7:00:00 does not divide a day",
        ),
    ],
)
def test_bad_histories_are_named(history: pd.Series, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        forecast_series(history, 24)


@pytest.mark.parametrize(
    ("horizon", "levels", "message"),
    [(0, (0.8,), "horizon must be a positive"), (24, (1.5,), "level 1.5 must be between")],
)
def test_bad_arguments_are_named(horizon: int, levels: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        forecast_series(hourly(range(48)), horizon, levels)


# -- candidates and their selection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [("profile", 0.077), ("profile-daily", 0.169), ("mean7d", 0.221),
     ("seasonal-2w", 0.052), ("mstl", 0.068), ("holt-winters", 0.042), ("gbm", 0.036),
     ("combination", 0.047), ("mean-combination", 0.058)],
)  # fmt: skip
def test_every_candidate_forecasts_a_seasonal_series(name: str, error: float) -> None:
    """Five weeks of a daily sine with quiet weekends: the week's mean absolute error
    relative to the noise-free shape's mean, as measured (the hour-of-day shape and the flat
    mean cannot see weekends)."""
    assert len({*BASE, *COMBINATIONS}) == 9  # each one is in the table
    series, shape = synthetic(seed=7, weeks=6)
    raw, times, step = regular_series(series.iloc[:-168])
    [values] = run([name], raw, times, 168, step).values()
    assert values.shape == (168,) and np.isfinite(values).all()
    assert np.mean(np.abs(values - shape[-168:])) / np.mean(shape) == pytest.approx(error, abs=2e-3)


def test_the_two_week_seasonal_mean_averages_each_hour_of_the_last_two_weeks() -> None:
    """Three weeks: the oldest is left out, each hour of the week is the mean of its two
    later values, and the forecast starts at the origin's hour of the week."""
    weeks = np.arange(3 * 168, dtype=float).reshape(3, 168)  # week k, hour h: 168 k + h
    raw, times, step = regular_series(hourly(weeks.ravel()))
    [values] = run(["seasonal-2w"], raw, times, 170, step).values()
    assert values[:3].tolist() == [252.0, 253.0, 254.0]  # (168 + 336) / 2 + h
    assert values[168:].tolist() == [252.0, 253.0]


def test_the_default_pool_leaves_out_holt_winters() -> None:
    """Holt-Winters ranked last at most design origins; it stays available by name."""
    assert ALL == ("profile", "profile-daily", "mean7d", "seasonal-2w", "mstl", "gbm")
    assert "holt-winters" in BASE


def test_gbm_features_use_only_values_before_their_origin() -> None:
    """Rows of a training origin are the same whatever comes at or after it."""
    series, _ = synthetic(seed=8, weeks=5)
    values = series.to_numpy()
    slots, days = np.arange(len(values)) % 24, (np.arange(len(values)) // 24) % 7
    origin, leads = 500, np.arange(1, 169)
    before, _ = _gbm_rows(values, slots, days, origin, leads, 24)
    changed = values.copy()
    changed[origin:] = 1e6
    after, _ = _gbm_rows(changed, slots, days, origin, leads, 24)
    assert np.array_equal(before, after)


def _backtests(errors: dict[str, float]) -> Backtests:
    actual = np.ones((3, 4))
    return Backtests(
        forecasts={name: actual + error for name, error in errors.items()},
        actual=actual,
        actual_times=[pd.date_range(START, periods=4, freq="1h")] * 3,
        scales=np.full(3, 0.5),
        window=4,
        spacing=2,
    )


def test_selection_keeps_the_best_ranked_candidates() -> None:
    tests = _backtests({"a": 0.3, "b": -0.1, "c": 0.2, "d": np.nan})
    assert tests.mase("b") == pytest.approx(0.2)
    assert select_top(tests, top=2) == ["b", "c"]
    assert select_top(tests, top=9) == ["b", "c", "a", "d"]  # unknown scores last


def test_selection_never_sees_the_origin_or_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """At each evaluation origin, every candidate fit (backtests and the final forecast) and
    the selector are given only values before the origin; a forecaster handed the future
    is caught by the same spies."""
    import timbel_dagster.ml.forecast.eval as evaluation

    seen: list[tuple[pd.Timestamp, pd.Timestamp, str]] = []  # (origin, latest time, who)
    origin: dict[str, pd.Timestamp] = {}

    def spy(values, times, horizon, step):
        seen.append((origin["now"], times[-1], "candidate"))
        return np.full(horizon, float(np.mean(values[-24:])))

    def selector(tests: Backtests) -> list[str]:
        latest = max(t[-1] for t in tests.actual_times)
        seen.append((origin["now"], latest, "selector"))
        return select_top(tests)

    real = evaluation.forecast

    def forecast_at_origin(history: pd.Series, *args, **kwargs):
        origin["now"] = history.index[-1] + pd.Timedelta(hours=1)
        return real(history, *args, **kwargs)

    monkeypatch.setitem(BASE, "spy", spy)
    monkeypatch.setattr(evaluation, "forecast", forecast_at_origin)
    series, _ = synthetic(seed=9, weeks=6)
    result = evaluation.evaluate_series(
        series, horizon=168, origins=2, candidates=("profile", "spy"), selector=selector
    )
    origins = [pd.Timestamp(row["origin"]) for row in result["per_origin"]]
    assert sorted({o for o, _, _ in seen}) == origins
    assert {who for _, _, who in seen} == {"candidate", "selector"}
    assert all(latest < at for at, latest, _ in seen), [s for s in seen if s[1] >= s[0]]
    # The spies see a leak: a forecast given the whole series at the first origin.
    seen.clear()
    origin["now"] = origins[0]
    real(series, 168, candidates=("profile", "spy"), selector=selector)
    assert any(latest >= at for at, latest, _ in seen)


# -- Bitbrains: the README's figures ----------------------------------------------------------


def test_bitbrains_cost_beats_both_baselines_with_calibrated_intervals() -> None:
    """One week ahead, hourly, 4 origins a week apart at the end of the trace, the method
    chosen at each origin on the weeks before it: MASE below both baselines (measured 1.005
    vs 1.110 for the 7-day mean and 1.161 for seasonal naive), weekly total error under 20 %
    (measured 17.8 %, the baselines 17.3 % and 16.0 %), 83.0 % of hours inside the 80 %
    interval, and each week's total inside its 80 % interval (4 of 4). The two held-out
    weeks (from 08-18 and 08-25; the design used origins up to 08-11) beat both baselines'
    MASE on their own."""
    result = evaluate_series(bitbrains_cost_series(bitbrains()), horizon=168, origins=4)
    assert result["n_origins"] == 4
    assert result["mase"] < result["baseline_mean7d_mase"]
    assert result["mase"] < result["baseline_seasonal_naive_mase"]
    assert result["weekly_total_error_pct"] < 20.0
    assert 0.75 <= result["hourly_coverage80"] <= 0.85
    assert result["weekly_total_in_interval80"] >= 3
    assert all(row["model"].startswith("median(") for row in result["per_origin"])
    # Why MASE < 0.75 (issue 16) is out of reach on this trace: each week's own median per
    # hour of day, known only afterwards, scores 0.896; the forecaster is within 0.11 of it.
    assert 0.85 < result["hindsight_daily_shape_mase"] < result["mase"]
    for row in result["per_origin"][2:]:
        assert row["forecast_mase"] < min(row["mean7d_mase"], row["seasonal_naive_mase"])


def test_bitbrains_cpu_beats_the_7_day_mean() -> None:
    """The raw cpu_usage_mhz column through the CSV path (measured MASE 1.030 vs 1.130 and
    1.195, weekly total error 20.1 % vs 19.1 % and 17.6 %)."""
    result = evaluate_csv(bitbrains(), "ts", "cpu_usage_mhz")
    assert result["n_origins"] == 4 and result["n_steps"] == 1490
    assert result["mase"] < result["baseline_mean7d_mase"]
    assert result["mase"] < result["baseline_seasonal_naive_mase"]


# -- the CLI ---------------------------------------------------------------------------------


def test_unknown_figures_are_null_in_the_json(tmp_path: Path) -> None:
    """A flat series has no MASE scale, so its MASEs are unknown (NaN): JSON has no NaN, and
    a strict parser must read the whole document, with null there."""
    times = pd.date_range("2026-01-05", periods=15 * 24, freq="1h", tz="UTC")
    path = tmp_path / "flat.csv"
    pd.DataFrame({"ts": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "usd": 3.0}).to_csv(path, index=False)
    result = CliRunner().invoke(
        main,
        ["ml", "evaluate-forecast", "--csv", str(path), "--time-col", "ts", "--value-col",
         "usd", "--horizon", "24", "--origins", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the JSON")

    data = json.loads(result.output, parse_constant=refuse)
    [origin] = data["per_origin"]
    assert origin["forecast_mase"] is None and origin["mean7d_mase"] is None
    assert data["mase"] is None


def test_cli_prints_the_evaluation_as_json() -> None:
    result = CliRunner().invoke(
        main,
        ["ml", "evaluate-forecast", "--csv", str(bitbrains()), "--time-col", "time_utc",
         "--value-col", "mem_usage_kb", "--horizon", "168", "--origins", "2", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {
        "mase",
        "weekly_total_error_pct",
        "baseline_mean7d_mase",
        "baseline_seasonal_naive_mase",
        "n_origins",
        "baseline_mean7d_weekly_total_error_pct",
        "baseline_seasonal_naive_weekly_total_error_pct",
    } <= set(data)
    assert data["n_origins"] == 2 and data["value_col"] == "mem_usage_kb"
    assert 0 <= data["weekly_total_in_interval80"] <= 2 and 0 <= data["hourly_coverage80"] <= 1
    assert [len(pair) for pair in data["weekly_total_interval80"]] == [2, 2]
    for row in data["per_origin"]:
        low, high = row["weekly_total_interval80"]
        assert low < row["forecast_total"] < high
        assert row["weekly_total_in_interval80"] == int(low <= row["actual_total"] <= high)
        assert {"model", "ranking", "mean7d_mase", "seasonal_naive_mase", "coverage80",
                "mean7d_total_error_pct", "seasonal_naive_total_error_pct"} <= set(row)  # fmt: skip


def test_cli_prints_a_table(tmp_path: Path) -> None:
    series, _ = synthetic(seed=6, weeks=4)
    path = tmp_path / "usage.csv"
    series.rename("cost").rename_axis("at").reset_index().to_csv(path, index=False)
    result = CliRunner().invoke(
        main,
        ["ml", "evaluate-forecast", "--csv", str(path), "--time-col", "at", "--value-col",
         "cost", "--origins", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "forecaster" in result.output and "mean last 7d" in result.output
    assert "80% INTERVAL" in result.output and "inside its 80% interval" in result.output


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "series.csv"
    path.write_text("at,value\n" + "\n".join(rows) + "\n")
    return path


def _hours(n: int) -> list[str]:
    return [f"{START + pd.Timedelta(hours=h):%Y-%m-%d %H:%M},{h % 24}" for h in range(n)]


@pytest.mark.parametrize(
    ("rows", "options", "message"),
    [
        (_hours(3), ["--value-col", "cpu"], "no column(s) cpu; it has at, value"),
        (_hours(400), [], "has 400 steps of 1:00:00; horizon 168 x 4 origins + 336 steps"),
        ([*_hours(2), "yesterday,3"], [], "line 4: at 'yesterday' is not a time"),
        ([*_hours(2), "2026-01-06 00:00,x"], [], "line 4: value 'x' is not a number"),
        (_hours(3)[::-1], [], "line 3: at goes back in time"),
        (_hours(2) + _hours(2)[1:], [], "line 4: at repeats the previous time"),
        (_hours(3), ["--freq", "often"], "freq 'often' is not a duration"),
    ],
)
def test_cli_names_bad_input(
    tmp_path: Path, rows: list[str], options: list[str], message: str
) -> None:
    path = _csv(tmp_path, rows)
    arguments = ["ml", "evaluate-forecast", "--csv", str(path), "--time-col", "at"]
    if "--value-col" not in options:
        arguments += ["--value-col", "value"]
    result = CliRunner().invoke(main, [*arguments, *options, "--json"])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1  # one line, no traceback


def test_cli_names_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["ml", "evaluate-forecast", "--csv", str(tmp_path / "nope.csv"), "--time-col", "t",
         "--value-col", "v"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "nope.csv: no such file" in result.output


def test_the_backtest_summary_scores_the_forecast_and_both_baselines_on_the_same_origins() -> None:
    """What the model card of `ml/cost_forecast` shows: asked for (it costs a millisecond a
    series), the chosen forecast's backtest MASE beside the last-7-days mean's (the same
    figure the `mean7d` candidate ranked with) and seasonal naive's, and interval coverage
    counted only against intervals built from earlier backtest windows."""
    series, _ = synthetic(seed=5, weeks=6)
    plain = forecast(series, 168, candidates=FAST)
    assert plain.backtest is None
    result = forecast(series, 168, candidates=FAST, summarise=True)
    summary = result.backtest
    # Six weeks: the oldest origin two weeks in, one every 2 days to a week before the end.
    assert summary is not None and summary["backtests"] == 11 and summary["window_steps"] == 168
    assert summary["baseline_mean7d_mase"] == pytest.approx(result.ranking["mean7d"], abs=1e-4)
    assert summary["mase"] > 0 and summary["baseline_seasonal_naive_mase"] > 0
    # Windows 2 days apart: window j has two earlier windows that ended before it from j=5.
    assert summary["coverage_windows"] == 6
    assert 0.5 < summary["coverage80"] < summary["coverage95"] <= 1
    assert summary["first_origin"] < summary["last_origin"] <= series.index[-1]
    # Four weeks: 4 backtests, none with two finished windows before it: no coverage.
    short = forecast(series.iloc[: 28 * 24], 168, candidates=FAST, summarise=True).backtest
    assert short["backtests"] == 4 and short["coverage80"] is None
    assert short["coverage_windows"] == 0
    # A gap: seasonal naive fills it as the baseline does; every figure is still known.
    gappy = series.copy()
    gappy.iloc[600:640] = np.nan
    figures = forecast(gappy, 168, candidates=FAST, summarise=True).backtest
    assert all(figures[k] > 0 for k in ("mase", "baseline_mean7d_mase", "coverage80"))
    assert figures["baseline_seasonal_naive_mase"] > 0
