"""base_backup_weekly: off until turned on, like the nightly backup; turned on, it skips until
TIMBEL_BASE_BACKUP_DIR is set, then asks for one `base_backup` run per Sunday."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from timbel_dagster.sensors.backups import backup_schedule, base_backup_schedule
from timbel_dagster.settings import get_settings

SUNDAY = dt.datetime(2026, 12, 6, 3, 17, tzinfo=dt.UTC)


@pytest.fixture
def settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("TIMBEL_BASE_BACKUP_DIR", raising=False)
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _tick() -> object:
    context = dg.build_schedule_context(scheduled_execution_time=SUNDAY)
    return base_backup_schedule.evaluate_tick(context)


@pytest.mark.usefixtures("settings_from_env")
def test_without_a_base_backup_directory_the_schedule_skips_saying_what_to_set() -> None:
    result = _tick()
    assert result.run_requests == []
    assert "set TIMBEL_BASE_BACKUP_DIR" in result.skip_message


@pytest.mark.usefixtures("settings_from_env")
def test_with_a_directory_each_sunday_asks_for_one_base_backup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIMBEL_BASE_BACKUP_DIR", str(tmp_path / "bases"))
    get_settings.cache_clear()
    [request] = _tick().run_requests
    assert request.run_key == "base-backup-2026-12-06"
    assert base_backup_schedule.job_name == "base_backup"


def test_it_is_off_until_turned_on_and_runs_weekly_after_the_nightly_backup() -> None:
    assert base_backup_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert base_backup_schedule.default_status == backup_schedule.default_status
    assert base_backup_schedule.cron_schedule == "17 3 * * 0"  # Sundays 03:17, nightly 02:17
    assert base_backup_schedule.execution_timezone == "UTC"
