"""The retention's selection (7 daily, 4 weekly, 12 monthly): a pure function, its boundaries,
and `prune_backups` applied to a real store and catalogue."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup.crypto import BackupKeys
from timbel_dagster.warehouse.backup.operations import create_backup, list_backups
from timbel_dagster.warehouse.backup.retention import (
    Candidate,
    Policy,
    plan_retention,
    prune_backups,
)
from timbel_dagster.warehouse.backup.store import DirectoryStore
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.backups import BackupRecord
from timbel_dagster.warehouse.schema.models import AuditEvent

UTC = dt.UTC
KEYS = BackupKeys.from_bytes(bytes(range(32)))


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _nightly(first: str, days: int, hour: int = 2) -> list[Candidate]:
    start = _at(first).replace(hour=hour)
    return [
        Candidate(f"b{(start + dt.timedelta(days=i)):%Y%m%d%H}", start + dt.timedelta(days=i), True)
        for i in range(days)
    ]


def test_a_year_of_nightly_backups_keeps_7_daily_4_weekly_12_monthly() -> None:
    """2026-01-01 .. 2026-12-31, one good backup a night: the last 7 nights, the Sunday of
    each of the last 4 ISO weeks (the newest of its week) and the last night of each of the
    last 12 months; 2026-12-31 is a Thursday."""
    backups = _nightly("2026-01-01", 365)
    plan = plan_retention(backups, Policy())
    daily = {f"b202612{d:02d}02" for d in range(25, 32)}
    weekly = {"b2026123102", "b2026122702", "b2026122002", "b2026121302"}  # Thu, then Sundays
    monthly = {"b2026123102"} | {
        f"b2026{m:02d}{(dt.date(2026, m + 1, 1) - dt.timedelta(days=1)).day:02d}02"
        for m in range(1, 12)
    }
    assert set(plan.keep) == daily | weekly | monthly
    # 12-31 is daily, weekly and monthly; Sunday 12-27 is daily and weekly
    assert len(plan.keep) == 7 + 2 + 11
    assert len(plan.delete) == 365 - len(plan.keep)
    assert plan.keep["b2026123102"] == ["newest", "daily 2026-12-31", "weekly 2026-W53",
                                        "monthly 2026-12"]  # fmt: skip
    assert plan.delete == sorted(plan.delete)  # oldest first


def test_several_backups_a_day_keep_the_newest_of_the_day() -> None:
    backups = [
        Candidate("early", _at("2026-12-05T01:00:00"), True),
        Candidate("late", _at("2026-12-05T23:59:59"), True),
        Candidate("next", _at("2026-12-06T00:00:00"), True),
    ]
    plan = plan_retention(backups, Policy(daily=2, weekly=0, monthly=0))
    assert set(plan.keep) == {"late", "next"} and plan.delete == ["early"]


def test_failed_backups_never_fill_a_period_nor_get_deleted() -> None:
    """The newest backup of 12-06 failed: 12-06's slot is not filled by it, so the good one
    of that day is kept; failed ones are listed apart."""
    backups = [
        Candidate("good-0605", _at("2026-12-05T02:00:00"), True),
        Candidate("good-0606", _at("2026-12-06T02:00:00"), True),
        Candidate("failed-0606", _at("2026-12-06T03:00:00"), False),
        Candidate("failed-0607", _at("2026-12-07T02:00:00"), False),
    ]
    plan = plan_retention(backups, Policy(daily=1, weekly=0, monthly=0))
    assert set(plan.keep) == {"good-0606"} and plan.delete == ["good-0605"]
    assert plan.not_good == ["failed-0606", "failed-0607"]


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        (Policy(0, 0, 0), {"d3"}),  # the newest good backup survives any policy
        (Policy(1, 0, 0), {"d3"}),
        (Policy(2, 0, 0), {"d3", "d2"}),
        (Policy(0, 1, 0), {"d3"}),
        # d1 (Sun 2026-11-29) ends the ISO week before d2/d3 (Mon 11-30, Tue 12-01)
        (Policy(0, 2, 0), {"d3", "d1"}),
        # d2 is the last of November, d3 the first of December
        (Policy(0, 0, 2), {"d3", "d2"}),
    ],
)
def test_period_boundaries(policy: Policy, kept: set[str]) -> None:
    backups = [
        Candidate("d0", _at("2026-11-28T23:00:00"), True),
        Candidate("d1", _at("2026-11-29T23:59:59"), True),
        Candidate("d2", _at("2026-11-30T00:00:00"), True),
        Candidate("d3", _at("2026-12-01T00:00:00"), True),
    ]
    plan = plan_retention(backups, policy)
    assert set(plan.keep) == kept
    assert set(plan.delete) == {"d0", "d1", "d2", "d3"} - kept


def test_days_without_backups_do_not_eat_the_ones_left() -> None:
    """Backups stopped a month ago: the 7 daily slots are the last 7 days that have one."""
    plan = plan_retention(_nightly("2026-10-01", 20), Policy(daily=7, weekly=0, monthly=0))
    assert sorted(plan.keep) == [f"b202610{d:02d}02" for d in range(14, 21)]


def test_times_in_another_zone_are_judged_in_utc() -> None:
    seoul = dt.timezone(dt.timedelta(hours=9))
    backups = [
        # 2026-12-06 08:00 in Seoul is 12-05 23:00 UTC: the same UTC day as "utc"
        Candidate("seoul", dt.datetime(2026, 12, 6, 8, 0, tzinfo=seoul), True),
        Candidate("utc", _at("2026-12-05T22:00:00"), True),
    ]
    plan = plan_retention(backups, Policy(daily=7, weekly=0, monthly=0))
    assert set(plan.keep) == {"seoul"} and plan.delete == ["utc"]


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="keep weekly must be 0 or more"):
        Policy(weekly=-1)


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_prune_deletes_from_the_store_and_marks_the_catalogue(
    warehouse_url: str, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path / "backups")
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.row")
    made = [
        create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim")
        for _ in range(3)
    ]  # three on one day: the daily rule keeps the newest
    ids = [m["id"] for m in made]  # oldest first (ids of one second do not sort by time)
    dry = prune_backups(store, KEYS, Policy(), database_url=None, actor="x", dry_run=True)
    assert dry["delete"] == ids[:2] and dry["deleted"] == []
    assert len(list_backups(store, KEYS)) == 3

    done = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert done["deleted"] == ids[:2]
    assert [b["id"] for b in list_backups(store, KEYS)] == ids[2:]  # the newest is kept
    assert sorted(p.name for p in store.directory.iterdir()) == [
        f"{ids[2]}.manifest.json",
        f"{ids[2]}.tbk",
    ]
    with get_engine(warehouse_url).connect() as connection:
        rows = dict(connection.execute(select(BackupRecord.id, BackupRecord.status)).all())
        last = connection.execute(
            select(AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id.desc()).limit(1)
        ).one()
    assert rows == {ids[0]: "pruned", ids[1]: "pruned", ids[2]: "good"}
    assert last.action == "backup.prune" and last.details["deleted"] == ids[:2]


class _FailingDelete(DirectoryStore):
    """A store whose delete of one file fails (a permission, a network error)."""

    def __init__(self, directory: Path, failing: str) -> None:
        super().__init__(directory)
        self.failing = failing

    def delete(self, name: str) -> None:
        if name == self.failing:
            raise PermissionError(f"cannot delete {name}")
        super().delete(name)


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_prune_that_fails_half_way_marks_only_the_backups_gone(
    warehouse_url: str, tmp_path: Path
) -> None:
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.row")
    store = DirectoryStore(tmp_path / "backups")
    ids = [
        create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim")[
            "id"
        ]
        for _ in range(4)
    ]
    failing = _FailingDelete(store.directory, f"{ids[1]}.tbk")
    with pytest.raises(PermissionError):
        prune_backups(failing, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert (store.directory / f"{ids[1]}.tbk").exists()  # still there: not pruned
    assert not (store.directory / f"{ids[0]}.tbk").exists()
    with get_engine(warehouse_url).connect() as connection:
        rows = dict(connection.execute(select(BackupRecord.id, BackupRecord.status)).all())
        last = connection.execute(
            select(AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id.desc()).limit(1)
        ).one()
    assert rows == {ids[0]: "pruned", ids[1]: "good", ids[2]: "good", ids[3]: "good"}
    assert last.action == "backup.prune" and last.details["deleted"] == [ids[0]]
