"""slo_status_every_5m: skips until TIMBEL_SLO_FILE is set, then asks for one evaluation
per 5-minute tick at the tick's time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from timbel_dagster.sensors.slo import slo_status_schedule
from timbel_dagster.settings import get_settings

TICK = dt.datetime(2026, 11, 2, 12, 5, tzinfo=dt.UTC)


@pytest.fixture
def settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("TIMBEL_SLO_FILE", raising=False)
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _tick() -> object:
    context = dg.build_schedule_context(scheduled_execution_time=TICK)
    return slo_status_schedule.evaluate_tick(context)


@pytest.mark.usefixtures("settings_from_env")
def test_without_an_slo_file_the_schedule_skips_saying_what_to_set() -> None:
    result = _tick()
    assert result.run_requests == []
    assert "set TIMBEL_SLO_FILE" in result.skip_message


@pytest.mark.usefixtures("settings_from_env")
def test_with_an_slo_file_each_tick_evaluates_at_its_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIMBEL_SLO_FILE", str(tmp_path / "slos.yaml"))
    get_settings.cache_clear()
    [request] = _tick().run_requests
    assert request.run_key == "slo-status-2026-11-02T12:05"
    assert request.run_config == {
        "ops": {"slo__slo_status": {"config": {"at": "2026-11-02T12:05:00+00:00"}}}
    }
    assert slo_status_schedule.cron_schedule == "*/5 * * * *"
    assert slo_status_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
