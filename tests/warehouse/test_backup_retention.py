"""The retention's selection (7 daily, 4 weekly, 12 monthly): a pure function, its boundaries,
and `prune_backups` applied to a real store and catalogue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupKeys
from timbel_dagster.warehouse.backup.operations import create_backup, list_backups, new_backup_id
from timbel_dagster.warehouse.backup.retention import (
    Candidate,
    Policy,
    PruneIncomplete,
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


def _statuses(warehouse_url: str) -> dict[str, str]:
    with get_engine(warehouse_url).connect() as connection:
        return dict(connection.execute(select(BackupRecord.id, BackupRecord.status)).all())


def _last_event(warehouse_url: str) -> Any:
    with get_engine(warehouse_url).connect() as connection:
        return connection.execute(
            select(AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id.desc()).limit(1)
        ).one()


def _made(warehouse_url: str, store: DirectoryStore, tmp_path: Path, count: int) -> list[str]:
    """`count` backups on one day (the daily rule keeps the newest), oldest first."""
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.row")
    return [
        create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim")[
            "id"
        ]
        for _ in range(count)
    ]


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_data_file_whose_delete_failed_is_deleted_by_the_next_prune(
    warehouse_url: str, tmp_path: Path
) -> None:
    """The delete of ids[1]'s data fails after its manifest went: the prune goes on with the
    others, keeps ids[1] `pruning` in the catalogue and fails naming the file; no listing
    shows ids[1] any more, but the dry run names its data, and the next prune deletes it."""
    store = DirectoryStore(tmp_path / "backups")
    ids = _made(warehouse_url, store, tmp_path, 4)
    failing = _FailingDelete(store.directory, f"{ids[1]}.tbk")
    with pytest.raises(PruneIncomplete, match=rf"could not delete {ids[1]}\.tbk") as raised:
        prune_backups(failing, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    first = raised.value.result
    assert first["deleted"] == [ids[0], ids[2]]  # the failure did not stop the others
    assert first["failed"] == [
        {
            "id": ids[1],
            "file": f"{ids[1]}.tbk",
            "error": f"PermissionError: cannot delete {ids[1]}.tbk",
        }
    ]
    assert (store.directory / f"{ids[1]}.tbk").exists()
    assert not (store.directory / f"{ids[1]}.manifest.json").exists()
    assert [b["id"] for b in list_backups(store, KEYS)] == [ids[3]]
    assert _statuses(warehouse_url) == {
        ids[0]: "pruned",
        ids[1]: "pruning",
        ids[2]: "pruned",
        ids[3]: "good",
    }
    assert _last_event(warehouse_url).details["deleted"] == [ids[0], ids[2]]

    dry = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="x", dry_run=True)
    assert dry["delete"] == [] and dry["orphans_deleted"] == []
    [orphan] = dry["orphans"]
    assert orphan["id"] == ids[1] and orphan["files"] == [f"{ids[1]}.tbk"]
    assert orphan["delete"] is True and "pruning" in orphan["why"]
    assert (store.directory / f"{ids[1]}.tbk").exists()

    done = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert done["deleted"] == [] and done["orphans_deleted"] == [ids[1]]
    assert sorted(p.name for p in store.directory.iterdir()) == [
        f"{ids[3]}.manifest.json",
        f"{ids[3]}.tbk",
    ]
    assert _statuses(warehouse_url)[ids[1]] == "pruned"
    last = _last_event(warehouse_url)
    assert last.action == "backup.prune" and last.details["orphans_deleted"] == [ids[1]]
    # Nothing left to do: a prune now changes nothing and records nothing.
    again = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert again["orphans"] == [] and _last_event(warehouse_url) == last


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_data_without_a_manifest_or_a_row_waits_for_the_orphan_age(
    warehouse_url: str, tmp_path: Path
) -> None:
    """A backup being written has its data in the store and no manifest nor catalogue row
    yet: a prune never touches it while its id (when it started) is younger than the orphan
    age; the data of a backup killed two days ago (no row, no manifest) goes."""
    store = DirectoryStore(tmp_path / "backups")
    [kept] = _made(warehouse_url, store, tmp_path, 1)
    now = dt.datetime.now(UTC)
    writing = new_backup_id("sqlite", now - dt.timedelta(hours=1))
    killed = new_backup_id("sqlite", now - dt.timedelta(hours=49))
    for name in (f"{writing}.tbk", f"{killed}.tbk", f"{killed}.dagster.tbk"):
        store.put(name, [b"ciphertext"])
    age = dt.timedelta(hours=48)

    dry = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="x",
                        dry_run=True, orphan_age=age, now=now)  # fmt: skip
    by_id = {o["id"]: o for o in dry["orphans"]}
    assert by_id[killed]["delete"] is True
    assert by_id[killed]["files"] == [f"{killed}.dagster.tbk", f"{killed}.tbk"]
    assert by_id[writing]["delete"] is False and "may still be writing" in by_id[writing]["why"]

    done = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim",
                         orphan_age=age, now=now)  # fmt: skip
    assert done["orphans_deleted"] == [killed]
    assert sorted(p.name for p in store.directory.iterdir()) == sorted(
        [f"{kept}.manifest.json", f"{kept}.tbk", f"{writing}.tbk"]
    )
    # Started 47 h ago it is still left; at 48 h it goes. No row is made up for it.
    later = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim",
                          orphan_age=age, now=now + dt.timedelta(hours=46))  # fmt: skip
    assert later["orphans_deleted"] == [] and (store.directory / f"{writing}.tbk").exists()
    last = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim",
                         orphan_age=age, now=now + dt.timedelta(hours=47))  # fmt: skip
    assert last["orphans_deleted"] == [writing]
    assert set(_statuses(warehouse_url)) == {kept}


class _NoManifest(DirectoryStore):
    """A store that takes the data but fails on the manifest (a full disk, an S3 error) and,
    with `stuck`, fails to delete the data too."""

    def __init__(self, directory: Path, *, stuck: bool) -> None:
        super().__init__(directory)
        self.stuck = stuck

    def put(self, name: str, chunks: Iterable[bytes]) -> None:
        if name.endswith(".manifest.json"):
            raise OSError(28, "No space left on device")
        super().put(name, chunks)

    def delete(self, name: str) -> None:
        if self.stuck:
            raise PermissionError(f"cannot delete {name}")
        super().delete(name)


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_backup_whose_manifest_fails_leaves_a_failed_row_and_no_data(
    warehouse_url: str, tmp_path: Path
) -> None:
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.row")
    directory = tmp_path / "backups"
    with pytest.raises(OSError, match="No space left"):
        create_backup(warehouse_url, _NoManifest(directory, stuck=False), KEYS,
                      anchor_file=tmp_path / "a", actor="minji.kim")  # fmt: skip
    assert list(directory.iterdir()) == []
    assert list(_statuses(warehouse_url).values()) == ["failed"]

    # Its data stuck as well: the failed row says the backup ended, so the next prune
    # deletes the data at once, whatever its age, and the row stays failed.
    with pytest.raises(OSError, match="No space left"):
        create_backup(warehouse_url, _NoManifest(directory, stuck=True), KEYS,
                      anchor_file=tmp_path / "a", actor="minji.kim")  # fmt: skip
    [left] = [p.name for p in directory.iterdir()]
    stuck_id = left.removesuffix(".tbk")
    assert _statuses(warehouse_url)[stuck_id] == "failed"
    done = prune_backups(DirectoryStore(directory), KEYS, Policy(), database_url=warehouse_url,
                         actor="minji.kim")  # fmt: skip
    assert done["orphans_deleted"] == [stuck_id] and list(directory.iterdir()) == []
    assert _statuses(warehouse_url)[stuck_id] == "failed"


class _SweptWhileRunning(DirectoryStore):
    """The data is deleted right after it is written, as a prune would sweep the data of a
    backup that ran longer than the orphan age."""

    def put(self, name: str, chunks: Iterable[bytes]) -> None:
        super().put(name, chunks)
        if name.endswith(".tbk"):
            self.delete(name)


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_backup_never_signs_a_manifest_for_data_that_is_gone(
    warehouse_url: str, tmp_path: Path
) -> None:
    store = _SweptWhileRunning(tmp_path / "backups")
    with pytest.raises(BackupError, match=r"\.tbk is gone from the store"):
        create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim")
    assert list(store.directory.iterdir()) == []
    assert list(_statuses(warehouse_url).values()) == ["failed"]


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_rows_left_pruning_are_finished_or_revived(warehouse_url: str, tmp_path: Path) -> None:
    """Two ways a prune can leave a row `pruning` with nothing for it to delete: every delete
    worked and the record was lost (nothing of ids[0] in the store: pruned), or it stopped
    before touching the backup (ids[2]'s manifest is there: the retention decides again, and
    a backup it keeps is good again)."""
    store = DirectoryStore(tmp_path / "backups")
    ids = _made(warehouse_url, store, tmp_path, 3)
    for suffix in (".manifest.json", ".tbk"):
        store.delete(ids[0] + suffix)
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(
            update(BackupRecord)
            .where(BackupRecord.id.in_([ids[0], ids[2]]))
            .values(status="pruning")
        )
    done = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert done["deleted"] == [ids[1]] and done["orphans"] == []
    assert _statuses(warehouse_url) == {ids[0]: "pruned", ids[1]: "pruned", ids[2]: "good"}
