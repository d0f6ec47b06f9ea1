"""Copies a killed base backup abandoned: a `.ID.partial` older than TIMBEL_BACKUP_ORPHAN_HOURS
whose writer is not running stops holding the WAL pruning back and is deleted (audited, and
reported by `timbel backup prune-bases`); a younger one, or one whose writer runs, holds it back
as before. The clock (`now`) and the copies' ids are given, never waited for; the writer record
is the one `take_base_backup` writes (base_writer.py), its pid this test's own or one that has
ended."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.test_cli import invoke
from tests.warehouse.test_base_retention import ARCHIVE, START, _base, _segment, _wal_file
from timbel_dagster.warehouse.backup import basebackup
from timbel_dagster.warehouse.backup.base_retention import prune_base_backups
from timbel_dagster.warehouse.backup.base_writer import (
    claim,
    pid_namespace,
    process_start,
    writer_path,
)
from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

# The copy began a day before bases[2] (week 2), the oldest of the two kept, and starts in
# segment 5: while it is being written, the WAL cut at segment 6 waits for it.
BEGAN = START + dt.timedelta(weeks=2, days=-1)
COPY = f"{BEGAN:%Y%m%dT%H%M%SZ}-base-c0ffee"
HOUR = dt.timedelta(hours=1)
AGE = dt.timedelta(hours=48)  # TIMBEL_BACKUP_ORPHAN_HOURS' default


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    directory = tmp_path / "bases"
    for week in range(4):  # starting in segments 2, 4, 6 and 8
        _base(directory, week, 2 * week + 2)
    return directory


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    wal = tmp_path / "wal"
    wal.mkdir()
    for name in ARCHIVE:
        _wal_file(wal / name)
    return wal


def _copy(directory: Path, base_id: str = COPY, segment: int | None = 5) -> Path:
    """`.ID.partial` as pg_basebackup leaves it part way: its backup_label (the first file it
    writes) says where it starts, or, with `segment` None, nothing has arrived yet."""
    partial = directory / f".{base_id}.partial"
    (partial / "base").mkdir(parents=True)
    if segment is not None:
        (partial / "backup_label").write_text(
            f"START WAL LOCATION: 0/{segment:X}000028 (file {_segment(segment)})\n"
            "BACKUP METHOD: streamed\nLABEL: timbel\nSTART TIMELINE: 1\n"
        )
    return partial


def _ended_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _record(partial: Path, **record: Any) -> None:
    writer_path(partial).write_text(json.dumps(record))


def _prune(directory: Path, archive: Path, now: dt.datetime, **kwargs: Any) -> dict[str, Any]:
    return prune_base_backups(directory, archive, 2, database_url=None, actor="x", now=now,
                              **kwargs)  # fmt: skip


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize(
    ("writer", "said"),
    [
        (None, "no writer record"),
        ({"host": "db-backup-7f9c", "pid": 1}, "written from host db-backup-7f9c"),
        ("ended", "has ended"),
        # This test's own pid, but started at another moment: a later process given it.
        ("reused", "has ended"),
        # This test's own pid and start, but in another container sharing the host's name
        # (hostNetwork): that pid there is not this process.
        ("namespace", "another PID namespace (container) of this host"),
    ],
)
def test_an_abandoned_copy_no_longer_holds_the_wal_back_and_is_deleted(
    directory: Path, archive: Path, writer: Any, said: str
) -> None:
    partial = _copy(directory)
    here = socket.gethostname()
    if writer == "ended":
        _record(partial, host=here, pid=_ended_pid(), process=None)
    elif writer == "reused":
        _record(partial, host=here, pid=os.getpid(), process="another-boot:1")
    elif writer == "namespace":
        _record(partial, host=here, pid=os.getpid(), process=process_start(os.getpid()),
                pid_namespace=(pid_namespace() or 0) + 1)  # fmt: skip
    elif writer:
        _record(partial, **writer)

    done = _prune(directory, archive, BEGAN + 72 * HOUR)

    assert done["partials_deleted"] == [COPY]
    [found] = done["partials"]
    assert found["abandoned"] is True and found["age_hours"] == 72.0
    assert found["why"].startswith("started 72 h ago, ") and said in found["why"]
    assert not partial.exists() and not writer_path(partial).exists()
    assert not any(COPY in name for name in _names(directory))  # no `.ID.pruning` left
    # The cut at segment 6, where bases[2] starts, as if the copy had never been.
    assert done["wal"]["cut"] == _segment(6) and done["wal"]["removed"] == 8
    assert _segment(5) not in _names(archive) and _segment(6) in _names(archive)


@pytest.mark.parametrize("writer", [None, "ended"])
def test_a_young_copy_still_holds_the_wal_back_and_is_kept(
    directory: Path, archive: Path, writer: str | None
) -> None:
    """Younger than TIMBEL_BACKUP_ORPHAN_HOURS, a copy may still be written (by a pg_basebackup
    whose parent was killed, or from another host): kept, whatever its record says."""
    partial = _copy(directory)
    if writer:
        _record(partial, host=socket.gethostname(), pid=_ended_pid(), process=None)

    done = _prune(directory, archive, BEGAN + AGE - HOUR)

    assert done["partials_deleted"] == [] and partial.is_dir()
    assert done["partials"][0]["abandoned"] is False
    assert done["partials"][0]["why"] == (
        "started 47 h ago: it may still be copying; abandoned once 48 h old with no writer running"
    )
    assert done["wal"]["skipped"].startswith(f"base backup {COPY} is being written (started")
    assert _names(archive) == sorted(ARCHIVE)
    # A limit of its own: past 24 h it is abandoned.
    later = _prune(directory, archive, BEGAN + AGE - HOUR, orphan_age=dt.timedelta(hours=24))
    assert later["partials_deleted"] == [COPY] and later["wal"]["removed"] == 8


def test_a_copy_whose_writer_runs_is_kept_however_old(directory: Path, archive: Path) -> None:
    partial = _copy(directory)
    claim(partial)  # this process writes it, as take_base_backup would

    done = _prune(directory, archive, BEGAN + 30 * 24 * HOUR)

    assert done["partials_deleted"] == [] and partial.is_dir()
    assert writer_path(partial).is_file()
    [found] = done["partials"]
    assert found["abandoned"] is False
    pid = os.getpid()
    assert found["why"] == f"started 720 h ago, its writer (pid {pid} on this host) is running"
    assert found["writer"]["process"] == process_start(os.getpid())
    assert found["writer"]["pid_namespace"] == pid_namespace() is not None
    assert "is being written" in done["wal"]["skipped"]
    assert _names(archive) == sorted(ARCHIVE)


def test_a_dry_run_deletes_no_abandoned_copy(directory: Path, archive: Path) -> None:
    partial = _copy(directory)
    before = _names(directory)

    dry = _prune(directory, archive, BEGAN + 72 * HOUR, dry_run=True)

    assert dry["partials"][0]["abandoned"] is True and dry["partials_deleted"] == []
    # The plan is the real run's: the copy would no longer hold the WAL back.
    assert dry["wal"]["before_cut"] == 8 and dry["wal"]["removed"] == 0
    assert partial.is_dir() and _names(directory) == before
    assert _names(archive) == sorted(ARCHIVE)


def test_a_copy_without_its_label_that_began_late_holds_nothing_back(
    directory: Path, archive: Path
) -> None:
    """Young, with no backup_label yet, begun after the oldest kept base backup: kept, and the
    WAL pruned (as before abandoned copies were told apart)."""
    late = f"{START + dt.timedelta(weeks=4):%Y%m%dT%H%M%SZ}-base-c0ffee"
    partial = _copy(directory, late, segment=None)
    done = _prune(directory, archive, START + dt.timedelta(weeks=4) + HOUR)
    assert partial.is_dir() and done["partials"][0]["start_segment"] is None
    assert done["wal"]["removed"] == 8


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_deleting_an_abandoned_copy_is_audited(
    warehouse_url: str, directory: Path, archive: Path
) -> None:
    """A prune whose only change is an abandoned copy deleted is audited; one that changes
    nothing is not."""
    now = BEGAN + 72 * HOUR
    _prune(directory, archive, now)  # the base backups and the WAL pruned, not audited
    _copy(directory)
    _record(directory / f".{COPY}.partial", host="db-backup-7f9c", pid=42)
    for _ in range(2):
        prune_base_backups(directory, archive, 2, database_url=warehouse_url,
                           actor="minji.kim", now=now)  # fmt: skip
    with get_engine(warehouse_url).connect() as connection:
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.details)
        ).all()
    [(actor, action, details)] = events
    assert (actor, action) == ("minji.kim", "backup.base_prune")
    assert details["deleted"] == [] and details["wal"]["removed"] == 0
    assert details["partials_deleted"] == [
        {
            "id": COPY,
            "started_at": BEGAN.isoformat(),
            "age_hours": 72.0,
            "writer": {"host": "db-backup-7f9c", "pid": 42},
            "why": "started 72 h ago, written from host db-backup-7f9c, whose processes this "
            "host cannot see: a copy killed half way",
        }
    ]


def test_take_base_backup_records_its_writer_while_it_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is there, naming this process, while pg_basebackup runs, and gone with the
    copy when it fails, and before the copy is renamed when it succeeds."""
    seen: list[dict[str, Any] | None] = []
    fail = [True]

    def program(command: list[str], what: str, **_kwargs: Any) -> str:
        if what == "pg_basebackup":
            [partial] = (tmp_path / "bases").glob(".*.partial")
            seen.append(json.loads(writer_path(partial).read_text()))
            if fail[0]:
                raise BackupError("pg_basebackup failed (exit 1): connection lost")
            (partial / "PG_VERSION").write_text("15\n")
        return "pg_basebackup (PostgreSQL) 15.10\n"

    monkeypatch.setattr(basebackup, "pg_program", lambda name, *_args: name)
    monkeypatch.setattr(basebackup, "run_program", program)
    monkeypatch.setattr(basebackup, "_server_now", lambda _url: dt.datetime.now(dt.UTC))
    monkeypatch.setattr(basebackup, "describe", lambda _copy, _bindir: {"start_lsn": "0/2000028"})
    url = "postgresql://postgres@127.0.0.1:1/postgres"
    with pytest.raises(BackupError, match="connection lost"):
        basebackup.take_base_backup(url, tmp_path / "bases", bindir=None)
    assert seen == [
        {"host": socket.gethostname(), "pid": os.getpid(), "process": process_start(os.getpid()),
         "pid_namespace": pid_namespace()}
    ]  # fmt: skip
    assert _names(tmp_path / "bases") == []

    fail[0] = False
    taken = basebackup.take_base_backup(url, tmp_path / "bases", bindir=None)
    assert len(seen) == 2 and seen[1]["pid"] == os.getpid()
    assert _names(tmp_path / "bases") == sorted([taken["id"], f"{taken['id']}.json"])


def test_timbel_backup_prune_bases_reports_abandoned_copies(
    directory: Path, archive: Path, tmp_path: Path
) -> None:
    """From the command, on the real clock: ids 30 hours and 30 minutes old, with
    TIMBEL_BACKUP_ORPHAN_HOURS=24."""
    now = dt.datetime.now(dt.UTC)
    old = f"{now - 30 * HOUR:%Y%m%dT%H%M%SZ}-base-0bad00"
    young = f"{now - dt.timedelta(minutes=30):%Y%m%dT%H%M%SZ}-base-900d00"
    _copy(directory, old, segment=None)
    _copy(directory, young, segment=None)
    args = ["backup", "prune-bases", "--dir", str(directory), "--wal-dir", str(archive)]
    env = {"TIMBEL_HOME": str(tmp_path / "home"), "TIMBEL_BASE_BACKUP_KEEP": "3",
           "TIMBEL_BACKUP_ORPHAN_HOURS": "24"}  # fmt: skip
    abandoned = "started 30 h ago, no writer record: a copy killed half way"
    writing = (
        "started 30 min ago: it may still be copying; abandoned once 24 h old with no writer "
        "running"
    )

    dry = invoke([*args, "--dry-run"], tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert f"would delete abandoned base backup copy .{old}.partial ({abandoned})" in lines
    assert f"left base backup copy .{young}.partial, being written ({writing})" in lines
    assert (directory / f".{old}.partial").is_dir()

    done = invoke([*args, "--json"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["partials_deleted"] == [old]
    assert [(p["id"], p["abandoned"]) for p in result["partials"]] == [(old, True), (young, False)]
    assert result["partials"][0]["age_hours"] == pytest.approx(30, abs=0.1)
    assert not (directory / f".{old}.partial").exists()
    assert (directory / f".{young}.partial").is_dir()

    again = invoke(args, tmp_path, **env)
    assert again.returncode == 0, again.stderr
    assert "abandoned base backup copy" not in again.stdout
    assert f"left base backup copy .{young}.partial" in again.stdout
