"""The base backups' retention (keep the newest N, never the newest good one, never an
unreadable one) and the WAL it removes (only what recovery from the oldest kept base backup
never reads), on base backup directories as `timbel backup base` leaves them and a WAL archive
as archive_command fills it. With real pg_basebackup copies: tests/jobs/test_base_backup_job.py."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.test_cli import invoke
from timbel_dagster.warehouse.backup import base_retention
from timbel_dagster.warehouse.backup.base_retention import (
    plan_base_retention,
    prune_base_backups,
    wal_before,
)
from timbel_dagster.warehouse.backup.basebackup import list_base_backups
from timbel_dagster.warehouse.backup.retention import PruneIncomplete
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

START = dt.datetime(2026, 11, 1, 3, 17, tzinfo=dt.UTC)
SYSTEM = (7715857657259206552).to_bytes(8, "little")  # the cluster's system identifier


def _wal_file(path: Path, system: bytes = SYSTEM) -> None:
    """A WAL file whose first page's long header names the cluster (byte 24 on)."""
    path.write_bytes(bytes.fromhex("10d1020001000000") + bytes(16) + system + path.name.encode())


def _segment(number: int, timeline: int = 1) -> str:
    return f"{timeline:08X}{0:08X}{number:08X}"


def _base(directory: Path, week: int, segment: int) -> str:
    """A base backup as `timbel backup base` leaves it: `ID/` and `ID.json`, taken in `week`,
    starting in WAL segment `segment` (16 MiB segments)."""
    at = START + dt.timedelta(weeks=week)
    base_id = f"{at:%Y%m%dT%H%M%SZ}-base-{week:06x}"
    (directory / base_id / "global").mkdir(parents=True)
    (directory / base_id / "global" / "pg_control").write_bytes(SYSTEM + bytes(8184))
    (directory / base_id / "PG_VERSION").write_text("15\n")
    metadata = {
        "id": base_id,
        "created_at": at.isoformat(),
        "finished_at": (at + dt.timedelta(minutes=3)).isoformat(),
        "start_lsn": f"0/{segment:X}000028",
        "start_segment": _segment(segment),
        "timeline": 1,
        "wal_segment_size": 16 << 20,
    }
    (directory / f"{base_id}.json").write_text(json.dumps(metadata))
    return base_id


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "bases"


@pytest.fixture
def bases(directory: Path) -> list[str]:
    """Four weekly base backups starting in segments 2, 4, 6 and 8, oldest first."""
    return [_base(directory, week, 2 * week + 2) for week in range(4)]


ARCHIVE = [
    *(_segment(n) for n in range(1, 10)),
    f"{_segment(3)}.00000028.backup",  # backup history files
    f"{_segment(6)}.00000028.backup",
    f"{_segment(5)}.partial",  # a promoted standby's last segment
    *(_segment(n, timeline=2) for n in (5, 7)),  # a later timeline
    "00000002.history",
    f".{_segment(10)}.a1b2c3.partial",  # archive_command copying segment 10 right now
    "README",
]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    wal = tmp_path / "wal"
    wal.mkdir()
    for name in ARCHIVE:
        _wal_file(wal / name)
    return wal


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_wal_before_the_cut_on_any_timeline_history_files_kept() -> None:
    """Recovery from a base backup starting in segment 6 reads segment 6 on, on its timeline
    or a later one: everything before position 6 goes, whatever its timeline; the timeline
    history, the file being copied and anything not WAL stay."""
    assert wal_before(ARCHIVE, _segment(6)) == sorted(
        [
            *(_segment(n) for n in range(1, 6)),
            f"{_segment(3)}.00000028.backup",
            f"{_segment(5)}.partial",
            _segment(5, timeline=2),
        ]
    )
    assert wal_before(ARCHIVE, _segment(1)) == []
    with pytest.raises(ValueError, match="not a WAL segment name"):
        wal_before(ARCHIVE, "00000002.history")


@pytest.mark.parametrize(
    ("keep", "kept"), [(1, [3]), (2, [3, 2]), (4, [3, 2, 1, 0]), (9, [3, 2, 1, 0])]
)
def test_the_newest_base_backups_are_kept(
    directory: Path, bases: list[str], keep: int, kept: list[int]
) -> None:
    plan = plan_base_retention(list_base_backups(directory), keep)
    assert plan.keep == [bases[i] for i in kept]  # newest first
    assert plan.delete == [b for b in bases if b not in plan.keep]  # oldest first
    assert plan.left == {}


def test_keeping_none_is_refused_and_unreadable_ones_are_never_counted_nor_deleted(
    directory: Path, bases: list[str]
) -> None:
    with pytest.raises(ValueError, match="keep must be 1 or more"):
        plan_base_retention(list_base_backups(directory), 0)
    (directory / f"{bases[3]}.json").write_text("{not json")
    plan = plan_base_retention(list_base_backups(directory), 1)
    assert plan.keep == [bases[2]]  # the newest good one, not the unreadable newer one
    assert plan.delete == bases[:2] and list(plan.left) == [bases[3]]


def test_the_end_orders_them_not_the_id(directory: Path) -> None:
    """A base backup that started earlier (its id) but finished later is the newer one."""
    slow = _base(directory, 0, 2)
    quick = _base(directory, 1, 4)
    meta = directory / f"{slow}.json"
    late = json.loads(meta.read_text()) | {
        "finished_at": (START + dt.timedelta(weeks=2)).isoformat()
    }
    meta.write_text(json.dumps(late))
    assert plan_base_retention(list_base_backups(directory), 1).keep == [slow]
    assert plan_base_retention(list_base_backups(directory), 1).delete == [quick]


def test_prune_deletes_the_old_base_backups_then_the_wal_only_they_needed(
    directory: Path, bases: list[str], archive: Path
) -> None:
    writing = directory / ".20261201T031700Z-base-abcdef.partial"  # pg_basebackup at work
    writing.mkdir()
    # An hour into that copy (test_base_retention_partials.py: once it is abandoned).
    now = dt.datetime(2026, 12, 1, 4, 17, tzinfo=dt.UTC)
    dry = prune_base_backups(
        directory, archive, 2, database_url=None, actor="x", dry_run=True, now=now
    )
    assert dry["delete"] == bases[:2] and dry["deleted"] == []
    assert dry["wal"]["before_cut"] == 8 and dry["wal"]["removed"] == 0
    assert len(_names(directory)) == 9 and len(_names(archive)) == len(ARCHIVE)

    done = prune_base_backups(directory, archive, 2, database_url=None, actor="x", now=now)
    assert done["deleted"] == bases[:2] and done["keep"] == [bases[3], bases[2]]
    assert done["partials_deleted"] == [] and done["partials"][0]["abandoned"] is False
    assert _names(directory) == sorted(
        [writing.name, bases[2], f"{bases[2]}.json", bases[3], f"{bases[3]}.json"]
    )
    # Cut at segment 6, where bases[2], the oldest kept, starts.
    assert done["wal"] | {"archive": None} == {
        "archive": None, "cut": _segment(6), "oldest_kept": bases[2], "before_cut": 8,
        "first": _segment(1), "last": _segment(5, timeline=2), "removed": 8,
    }  # fmt: skip
    assert _names(archive) == sorted(set(ARCHIVE) - set(wal_before(ARCHIVE, _segment(6))))
    assert _segment(6) in _names(archive) and "00000002.history" in _names(archive)

    again = prune_base_backups(directory, archive, 2, database_url=None, actor="x", now=now)
    assert again["deleted"] == [] and again["wal"]["removed"] == 0


def test_a_delete_that_fails_half_way_is_finished_by_the_next_prune(
    directory: Path, bases: list[str], archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rmtree fails on bases[0]'s files: its directory was renamed `.ID.pruning` first, so it
    is never chosen nor listed; the prune goes on with bases[1] and the WAL, and fails naming
    what is left; the next prune finishes it."""
    rmtree, failed = shutil.rmtree, []

    def fails_once(path: Path, *args, **kwargs) -> None:
        if bases[0] in str(path) and not failed:
            failed.append(path)
            raise PermissionError(13, "Permission denied", str(Path(path) / "global"))
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(base_retention.shutil, "rmtree", fails_once)
    with pytest.raises(PruneIncomplete, match=rf"could not delete .*\.{bases[0]}\.pruning/global"):
        prune_base_backups(directory, archive, 2, database_url=None, actor="x")
    assert f".{bases[0]}.pruning" in _names(directory)
    assert f"{bases[0]}.json" not in _names(directory) and bases[1] not in _names(directory)
    assert [b["id"] for b in list_base_backups(directory)] == bases[2:]
    assert _segment(5) not in _names(archive)  # the WAL was pruned all the same

    dry = prune_base_backups(directory, archive, 2, database_url=None, actor="x", dry_run=True)
    assert dry["pending"] == [bases[0]] and f".{bases[0]}.pruning" in _names(directory)
    done = prune_base_backups(directory, archive, 2, database_url=None, actor="x")
    assert done["pending"] == [bases[0]] and done["deleted"] == []
    assert _names(directory) == sorted([bases[2], f"{bases[2]}.json", bases[3], f"{bases[3]}.json"])


def test_no_wal_is_removed_when_the_cut_is_uncertain(
    directory: Path, bases: list[str], archive: Path, tmp_path: Path
) -> None:
    everything = _names(archive)
    (directory / f"{bases[0]}.json").write_text("{not json")  # what WAL does it need?
    unread = prune_base_backups(directory, archive, 2, database_url=None, actor="x")
    assert unread["wal"]["skipped"].startswith(f"base backup {bases[0]} cannot be read")
    assert unread["deleted"] == [bases[1]] and bases[0] in _names(directory)  # left as it is
    (directory / f"{bases[0]}.json").unlink()
    shutil.rmtree(directory / bases[0])
    (archive / _segment(6)).unlink()  # where the oldest kept one starts: not archived yet
    missing = prune_base_backups(directory, archive, 2, database_url=None, actor="x")
    assert missing["wal"] == {
        "skipped": f"{_segment(6)}, where the oldest base backup kept ({bases[2]}) starts, is "
        f"not in {archive}: not archived yet, or not this cluster's archive"
    }
    assert _names(archive) == sorted(set(everything) - {_segment(6)})
    _wal_file(archive / _segment(6), system=(42).to_bytes(8, "little"))  # another cluster's
    other = prune_base_backups(directory, archive, 2, database_url=None, actor="x")
    assert other["wal"] == {
        "skipped": f"{archive / _segment(6)} was not written by the cluster base backup "
        f"{bases[2]} copies (another system identifier): not this cluster's archive"
    }
    assert _names(archive) == everything
    elsewhere = prune_base_backups(directory, tmp_path / "nowhere", 2, database_url=None, actor="x")
    assert elsewhere["wal"] == {"skipped": f"no WAL archive at {tmp_path / 'nowhere'} on this host"}


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_prune_is_audited_in_the_warehouse(
    warehouse_url: str, directory: Path, bases: list[str], archive: Path
) -> None:
    prune_base_backups(directory, archive, 3, database_url=warehouse_url, actor="minji.kim")
    prune_base_backups(directory, archive, 3, database_url=warehouse_url, actor="minji.kim")
    with get_engine(warehouse_url).connect() as connection:
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.details)
        ).all()
    [(actor, action, details)] = events  # the second prune changed nothing: no event
    assert (actor, action) == ("minji.kim", "backup.base_prune")
    assert details["deleted"] == [bases[0]] and details["keep"] == bases[:0:-1]
    # Segments 1 to 3 and the backup history file of 3.
    assert details["wal"]["cut"] == _segment(4) and details["wal"]["removed"] == 4


def test_timbel_backup_prune_bases(
    directory: Path, bases: list[str], archive: Path, tmp_path: Path
) -> None:
    args = ["backup", "prune-bases", "--dir", str(directory), "--wal-dir", str(archive)]
    env = {"TIMBEL_HOME": str(tmp_path / "home"), "TIMBEL_BASE_BACKUP_KEEP": "3"}
    dry = invoke([*args, "--dry-run"], tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"would delete base backup {bases[0]}",
        *(f"keep base backup {b}" for b in reversed(bases[1:])),
        f"would delete 4 WAL files of {archive} ({_segment(1)}..{_segment(3)}.00000028.backup), "
        f"all before {_segment(4)}, where {bases[1]} starts",
    ]
    done = invoke([*args, "--json"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["deleted"] == [bases[0]] and result["wal"]["removed"] == 4
    again = invoke(args, tmp_path, **env)
    assert f"no WAL in {archive} before {_segment(4)}, where {bases[1]} starts" in again.stdout
