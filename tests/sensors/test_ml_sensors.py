"""Retraining: the weekly schedule, the drift verdict and the drift sensor."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.ml.models.store import StoredModel
from timbel_dagster.ml.risk.advisor import drift
from timbel_dagster.sensors import ml as ml_sensors

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


@dataclass
class ColumnScore:
    """A stand-in estimator whose risk is one column of the frame."""

    column: str

    def risk(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.column].to_numpy(float)


def _stored(auc: float, column: str = "score") -> StoredModel:
    return StoredModel(
        name="risk_model",
        version=3,
        code_version="risk-1",
        trained_at=NOW,
        trained_until=NOW,
        features=[column],
        evaluation={"auc": auc},
        estimator=ColumnScore(column),
    )


def _table(scores: list[float], labels: list[int], days_ago: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "score": scores,
            "label": labels,
            "started_at": [pd.Timestamp(NOW - dt.timedelta(days=d)) for d in days_ago],
        }
    )


@pytest.mark.parametrize(
    ("reference", "scores", "retrain"),
    [
        (0.9, [0.1, 0.2, 0.8, 0.9], False),  # recent AUC 1.0: better than accepted
        (0.9, [0.9, 0.8, 0.2, 0.1], True),  # recent AUC 0.0: a drop of 0.9
        (0.79, [0.1, 0.6, 0.5, 0.9], False),  # AUC 0.75: a drop of 0.04 is within 0.05
        (0.81, [0.1, 0.6, 0.5, 0.9], True),  # ... 0.06 is
    ],
)
def test_drift_verdict(reference: float, scores: list[float], retrain: bool) -> None:
    table = _table(scores, [0, 0, 1, 1], [1, 2, 3, 4])
    verdict = drift(_stored(reference), table, window_days=30, max_drop=0.05, now=NOW)
    assert verdict["n_recent"] == 4 and verdict["retrain"] is retrain
    assert verdict["drop"] == pytest.approx(reference - verdict["recent_auc"])


def test_only_the_window_counts_and_one_class_gives_no_verdict() -> None:
    # The two failures are older than the window: the recent part has successes only.
    table = _table([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], [1, 2, 40, 50])
    verdict = drift(_stored(0.9), table, window_days=30, max_drop=0.05, now=NOW)
    assert verdict["n_recent"] == 2 and verdict["retrain"] is False
    assert verdict["recent_auc"] is None and "no verdict" in verdict["reason"]


def test_weekly_schedule_retrains_with_its_reason() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=NOW)
    request = ml_sensors.ml_retrain_schedule(context)
    assert request.run_key == "ml-retrain-2026-11-29"
    assert request.run_config == {"ops": {"ml__risk_model": {"config": {"reason": "schedule"}}}}


def _tick(warehouse_url: str) -> object:
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
    ) as context:
        return ml_sensors.risk_drift_sensor(context)


def test_drift_sensor_skips_without_a_model(warehouse_url: str) -> None:
    result = _tick(warehouse_url)
    assert isinstance(result, dg.SkipReason)
    assert "no risk_model has been trained yet" in result.skip_message


def test_drift_sensor_requests_one_retrain_per_model_version(
    warehouse_url: str, monkeypatch
) -> None:
    verdicts = iter(
        [
            {"retrain": True, "model_version": 3, "reason": "AUC fell by 0.2 (> 0.05): retrain"},
            {"retrain": False, "model_version": 4, "reason": "AUC moved by +0.010: within 0.05"},
        ]
    )
    monkeypatch.setattr(ml_sensors, "drift_verdict", lambda url, settings: next(verdicts))
    request = _tick(warehouse_url)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "risk-drift-v3" and request.job_name == "ml_retrain"
    assert request.tags["timbel/retrain_reason"] == "drift"
    assert isinstance(_tick(warehouse_url), dg.SkipReason)


def test_drift_sensor_skips_a_refused_model_without_unpickling_it(
    warehouse_url: str, tmp_path, monkeypatch
) -> None:
    from tests.ml.test_model_store import _insert, _payload
    from timbel_dagster.settings import get_settings

    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    marker = tmp_path / "marker"
    _insert(warehouse_url, _payload(marker), "hmac-sha256:" + "0" * 64)
    try:
        result = _tick(warehouse_url)
    finally:
        get_settings.cache_clear()
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message.startswith("model risk_model v1 does not match its signature")
    assert not marker.exists()
