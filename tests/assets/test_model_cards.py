"""The model cards of the three ML assets, built from plain inputs: every number comes from
the run's data or the stored evaluation, and a missing evaluation says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from timbel_dagster.assets.ml.cards import bottleneck_card, forecast_card, risk_card
from timbel_dagster.assets.ml.risk import _evaluation_metadata
from timbel_dagster.ml.cards import render
from timbel_dagster.ml.changepoints.detect import SHIPPED_RULE
from timbel_dagster.ml.risk.advisor import RISK_CODE_VERSION
from timbel_dagster.ml.risk.calibration import calibration_table

EVALUATION = {
    "auc": 0.83,
    "pr_auc": 0.31,
    "brier": 0.045,
    "recall_at_20pct_effort": 0.55,
    "baseline_la_auc": 0.71,
    "baseline_rf_auc": 0.8,
    "baseline_rf_pr_auc": 0.27,
    "baseline_smallest_first_recall_at_20pct_effort": 0.4,
    "n_train": 80,
    "n_test": 20,
    "train_defect_rate": 0.1,
    "test_defect_rate": 0.15,
    "tested_from": "2026-10-20 00:00:00+00:00",
}


def _table(rows: int = 100, failed: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "started_at": pd.date_range("2026-09-01", periods=rows, freq="D", tz="UTC"),
            "label": [1] * failed + [0] * (rows - failed),
        }
    )


def _calibration() -> pd.DataFrame:
    probability = pd.Series(np.linspace(0.01, 0.6, 20))
    label = pd.Series([0] * 17 + [1] * 3)
    return calibration_table(probability, label, (0.0, 0.1, 0.3, 1.0))


def test_the_risk_card_has_the_window_sizes_figures_baselines_plot_and_limits() -> None:
    text = render(
        risk_card(EVALUATION, 3, _table(), _calibration(), "![c](data:image/png;base64,AA)")
    )
    assert f"**Version:** v3 (code {RISK_CODE_VERSION})" in text
    assert "**Training window:** 2026-09-01 00:00 to 2026-12-09 00:00 (UTC)" in text
    assert "**Data size:** 100 deployments, 12 failed, 88 succeeded" in text
    assert "| ROC AUC | 0.8300 | lines added (LApredict) | 0.7100 | higher |" in text
    assert "| PR AUC | 0.3100 | random order | 0.1500 | higher |" in text
    # Always predicting the training rate 0.1 where 15 % fail: 0.15 * 0.9**2 + 0.85 * 0.1**2.
    assert "| Brier score | 0.04500 | training failure rate | 0.1300 | lower |" in text
    assert "| recall at 20 % effort | 0.5500 | smallest first | 0.4000 | higher |" in text
    assert "![c](data:image/png;base64,AA)" in text
    assert "the newest 20 deployments (from 2026-10-20) with 3 failures" in text
    assert "3 of 3 calibration bins hold fewer than 30 held-out deployments" in text
    assert "public just-in-time defect datasets" in text and "no public benchmark" in text


@pytest.mark.parametrize(
    ("evaluation", "table"),
    [
        (EVALUATION | {"auc": 0.84}, _table()),
        (EVALUATION | {"baseline_la_auc": 0.7}, _table()),
        (EVALUATION | {"n_test": 21}, _table()),
        (EVALUATION, _table(rows=101)),
        (EVALUATION, _table(failed=13)),
    ],
)
def test_the_risk_card_changes_with_its_inputs(evaluation: dict, table: pd.DataFrame) -> None:
    base = render(risk_card(EVALUATION, 3, _table(), None, None))
    assert render(risk_card(evaluation, 3, table, None, None)) != base


@pytest.mark.parametrize(
    ("features", "said"),
    [
        (None, None),  # stored before the evaluation named its features
        (["la", "prior_fixes", "recent_churn"], None),
        (["la", "recent_churn"], "history (prior_fixes): it takes one value"),
        (["la"], "history (prior_fixes and recent_churn): it takes one value"),
    ],
)
def test_the_risk_card_says_when_the_file_history_is_not_used(
    features: list[str] | None, said: str | None
) -> None:
    evaluation = EVALUATION | ({"features": features} if features is not None else {})
    text = render(risk_card(evaluation, 3, _table(), None, None))
    assert ("It does not use the touched files' history" in text) is (said is not None)
    if said is not None:
        assert said in text and "the sample organisation's commits have no files" in text


def test_a_stored_evaluation_without_figures_is_not_evaluated_and_says_why() -> None:
    old = {"n_train": 80}
    text = render(risk_card(old, 2, _table(), None, None))
    assert (
        "Not evaluated: the stored evaluation of v2 has no auc, n_test, test_defect_rate, "
        "train_defect_rate"
    ) in text
    assert "| ROC AUC" not in text and "**Data size:** 100 deployments" in text
    empty = render(risk_card(old, 2, _table(rows=0, failed=0), None, None))
    assert "**Training window:** no data yet" in empty


def _frames(executions: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    started = pd.date_range("2026-10-01", periods=executions, freq="h", tz="UTC")
    return pd.DataFrame({"started_at": started}), pd.DataFrame({"execution_id": range(40)})


def test_the_bottleneck_card_counts_its_series_and_names_its_rule() -> None:
    executions, stages = _frames(30)
    report = {
        "critical_paths": [{}, {}],
        "regressions": [{}],
        "flaky": [],
        "suggestions": [{}, {}, {}],
        "series_points": [30, 25, 4],
    }
    text = render(bottleneck_card("bottlenecks-2", executions, stages, report))
    assert f"change-point rule {SHIPPED_RULE.label}" in text
    assert "**Analysed window (the rule learns nothing from it):** 2026-10-01 00:00 to " in text
    assert "30 executions, 40 stage attempts, 3 duration series, 59 points in them" in text
    assert "| duration regressions found | 1 | - | - | - |" in text
    assert "| suggestions | 3 | - | - | - |" in text
    assert "Not evaluated: no baseline in this run" in text
    assert "leave-one-series-out over a grid of 6 rules" in text
    assert "1 of 3 duration series have fewer than 10 successful runs" in text
    assert "scores above TCPDBench's default binary segmentation" in text
    fewer = render(bottleneck_card("bottlenecks-2", *_frames(31), report | {"flaky": [{}]}))
    assert fewer != text and "| flaky stages found | 1 |" in fewer


BACKTEST = {
    "backtests": 11,
    "window_steps": 168,
    "first_origin": pd.Timestamp("2026-09-21", tz="UTC"),
    "last_origin": pd.Timestamp("2026-10-11", tz="UTC"),
    "mase": 0.81,
    "baseline_mean7d_mase": 0.9,
    "baseline_seasonal_naive_mase": 1.02,
    "coverage80": 0.77,
    "coverage95": 0.93,
    "coverage_windows": 6,
}
TOTAL = {
    "first_hour": pd.Timestamp("2026-09-07", tz="UTC"),
    "last_hour": pd.Timestamp("2026-10-18 23:00", tz="UTC"),
    "hours": 1008,
    "model": "median(profile, gbm, mstl, holt-winters, profile-daily)",
    "method": "weekly-profile",
    "interval_method": "backtest, relative",
    "ranking": {"profile": 0.8, "gbm": 0.85, "mean7d": 0.9},
    "backtest": BACKTEST,
}


def test_the_forecast_card_shows_backtest_mase_beside_both_baselines_and_coverage() -> None:
    text = render(forecast_card("forecast-2", TOTAL, 60))
    assert "**Version:** forecast-2: median(profile, gbm, mstl" in text
    assert "**Training window:** 2026-09-07 00:00 to 2026-10-18 23:00 (UTC)" in text
    assert "**Data size:** 1,008 hours, 60 series forecast" in text
    assert "| MASE (backtests) | 0.8100 | last-7-days mean | 0.9000 | lower |" in text
    assert "| MASE (backtests) | 0.8100 | seasonal naive (weekly) | 1.020 | lower |" in text
    assert "| hourly 80 % interval coverage | 0.7700 | nominal | 0.8000 | closer |" in text
    assert "profile 0.800, gbm 0.850, mean7d 0.900" in text
    assert "MASE over 11 backtests of 168 hours (origins 2026-09-21 to 2026-10-11)" in text
    assert "MASE < 0.75" in text and "Not evaluated" not in text
    worse = render(forecast_card("forecast-2", TOTAL | {"backtest": BACKTEST | {"mase": 0.95}}, 60))
    assert "**Behind a baseline:** MASE (backtests) 0.9500 vs last-7-days mean 0.9000" in worse


def test_a_forecast_without_backtests_or_cost_is_not_evaluated_and_says_why() -> None:
    short = TOTAL | {
        "hours": 24,
        "method": "flat-mean",
        "backtest": None,
        "ranking": {},
        "interval_method": "in-sample, totals from summed hourly bounds",
    }
    text = render(forecast_card("forecast-2", short, 60))
    assert "Not evaluated: 24 hours of history: fewer than 3 backtests fit" in text
    assert "| MASE" not in text and "in-sample residuals" in text
    none = render(forecast_card("forecast-2", None, 0))
    assert "Not evaluated: no cluster cost in the warehouse yet" in none
    assert "**Training window:** no data yet" in none


def test_the_risk_asset_metadata_survives_an_evaluation_without_figures() -> None:
    metadata = _evaluation_metadata({"n_train": 80}, 2, "unchanged", _table(rows=0, failed=0))
    assert "auc" not in metadata and metadata["n_train"].value == 80
    assert "Not evaluated: the stored evaluation of v2 has no auc" in metadata["model_card"].value
