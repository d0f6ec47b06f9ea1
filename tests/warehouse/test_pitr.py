"""Point-in-time recovery (issue 17 item 2) end to end on a throwaway PostgreSQL cluster the
module starts itself (tests/services/postgres_cluster.py): a base backup, rows written, the
time noted, more rows, then `timbel backup pitr` back to the noted time finds exactly the
first rows; and every refusal leaves the target untouched."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import missing_service
from tests.services.postgres_cluster import (
    BINDIR,
    OS_USER,
    Cluster,
    check_programs,
    free_port,
    throwaway_cluster,
)
from tests.test_backup_cli import _one_line_error
from tests.test_cli import invoke
from timbel_dagster.warehouse.backup.pitr import recovery_settings

# One cluster for the module: its tests must share a worker under --dist loadgroup.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pitr")]
FIRST, SECOND = 100, 150


@dataclass(frozen=True)
class Story:
    cluster: Cluster
    base: dict
    noted: dt.datetime  # after the first rows committed, before the second
    middle_segment: str  # archived between the base backup's start and the newest segment
    home: Path

    def pitr(self, *args: str, wal_dir: Path | None = None) -> subprocess.CompletedProcess:
        env = {"TIMBEL_WAL_ARCHIVE_DIR": str(wal_dir or self.cluster.archive)}
        return timbel(["backup", "pitr", *args], self, **env)


def timbel(args: list[str], story_or_home: Story | Path, **env: str) -> subprocess.CompletedProcess:
    home = story_or_home.home if isinstance(story_or_home, Story) else story_or_home
    base_dir = home / "base-backups"
    return invoke(args, home, TIMBEL_HOME=str(home), TIMBEL_BASE_BACKUP_DIR=str(base_dir), **env)


@pytest.fixture(scope="module")
def story() -> Iterator[Story]:
    try:
        check_programs()
    except FileNotFoundError as error:
        missing_service(str(error))
    with throwaway_cluster() as cluster:
        home = cluster.root / "home"
        home.mkdir()
        cluster.sql("CREATE TABLE events (id int PRIMARY KEY, batch text NOT NULL)")
        taken = timbel(["backup", "base", "--connection", cluster.url, "--json"], home)
        assert taken.returncode == 0, taken.stderr
        base = json.loads(taken.stdout)
        cluster.sql(f"INSERT INTO events SELECT g, 'first' FROM generate_series(1, {FIRST}) g")
        middle = cluster.switch_and_archive()
        # The server's clock once the first rows are committed: commit times, which recovery
        # compares the target with, come from that clock.
        ((noted,),) = cluster.sql("SELECT clock_timestamp()")
        cluster.sql(
            "INSERT INTO events SELECT g, 'second' "
            f"FROM generate_series({FIRST + 1}, {FIRST + SECOND}) g"
        )
        cluster.switch_and_archive()
        yield Story(cluster, base, noted, middle, home)


def test_base_backup_records_where_it_starts(story: Story) -> None:
    base = story.base
    assert base["timeline"] == 1 and base["wal_segment_size"] == 16 << 20
    assert base["start_segment"] < story.middle_segment
    assert Path(base["path"], "backup_manifest").is_file()
    listed = json.loads(timbel(["backup", "bases", "--json"], story).stdout)
    assert [b["id"] for b in listed] == [base["id"]] and listed[0]["problem"] is None
    assert base["id"] in timbel(["backup", "bases"], story).stdout


def test_recovers_exactly_the_rows_committed_before_the_noted_time(story: Story) -> None:
    assert story.cluster.sql("SELECT count(*) FROM events") == [(FIRST + SECOND,)]
    target, port = story.cluster.root / "recovered", free_port()
    done = story.pitr("--to", story.noted.isoformat(), "--target", str(target), "--start",
                      "--port", str(port), "--os-user", "postgres", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["base"] == story.base["id"] and result["started"] is True
    assert result["recovery_stop"].startswith("recovery stopping before commit")
    rows = story.cluster.sql("SELECT batch, count(*), min(id), max(id) FROM events GROUP BY 1",
                             port=port)  # fmt: skip
    assert rows == [("first", FIRST, 1, FIRST)]
    # Promoted, on a timeline of its own, and not archiving into the source's archive.
    assert story.cluster.sql("SELECT pg_is_in_recovery()", port=port) == [(False,)]
    assert story.cluster.sql("SHOW archive_mode", port=port) == [("off",)]
    assert not any(p.name.endswith(".history") for p in story.cluster.archive.iterdir())
    story.cluster.stop(target)


def test_without_start_the_copy_starts_by_hand_beside_the_source(story: Story) -> None:
    """The copy keeps the source's postgresql.conf, port included: without --start it is set
    to listen on --port (127.0.0.1), so `pg_ctl start -D TARGET`, as printed, starts it while
    the source runs on the same host."""
    target, port = story.cluster.root / "by-hand", free_port()
    done = story.pitr("--to", story.noted.isoformat(), "--target", str(target),
                      "--port", str(port))  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    as_json = story.pitr("--to", story.noted.isoformat(), "--target", str(target.with_name("j")),
                         "--port", str(port), "--json")  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["started"] is False and result["port"] == port
    assert f"start it with: pg_ctl start -D {target} (as its owner)" in said
    assert f"listens on 127.0.0.1:{port}" in said
    assert "until `SELECT pg_is_in_recovery()` returns false there" in said
    subprocess.run(["chown", "-R", f"{OS_USER}:{OS_USER}", str(target)], check=True)
    started = subprocess.run(
        ["runuser", "-u", OS_USER, "--", str(BINDIR / "pg_ctl"), "start", "-D", str(target),
         "-l", str(target / "by-hand.log"), "-w", "-t", "120"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    try:
        assert started.returncode == 0, (target / "by-hand.log").read_text()
        assert story.cluster.sql("SHOW port", port=port) == [(str(port),)]
        # pg_ctl -w returns once connections are taken, which a hot standby does while it
        # replays: the rows are the moment's only once it has promoted (as printed).
        _wait_until_promoted(story, port, target)
        assert story.cluster.sql("SELECT count(*) FROM events", port=port) == [(FIRST,)]
        assert story.cluster.sql("SELECT count(*) FROM events") == [(FIRST + SECOND,)]
    finally:
        story.cluster.stop(target)


def _wait_until_promoted(story: Story, port: int, target: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while story.cluster.sql("SELECT pg_is_in_recovery()", port=port) != [(False,)]:
        log = (target / "by-hand.log").read_text(errors="replace")
        assert time.monotonic() < deadline, f"still recovering after {timeout} s:\n{log}"
        time.sleep(0.2)


def test_a_missing_wal_segment_is_named_and_the_target_is_untouched(
    story: Story, tmp_path: Path
) -> None:
    gap = tmp_path / "archive-with-a-gap"
    shutil.copytree(story.cluster.archive, gap)
    (gap / story.middle_segment).unlink()
    target = tmp_path / "target"
    target.mkdir()
    refused = story.pitr("--to", story.noted.isoformat(), "--target", str(target), wal_dir=gap)
    segno = int(story.middle_segment[16:], 16)
    _one_line_error(
        refused,
        f"WAL segment {story.middle_segment} is missing from {gap}",
        f"recovery cannot pass 0/{segno:X}000000",
    )
    assert target.is_dir() and list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [gap.name, "target"]  # no staging


def test_refusals_leave_the_target_as_it_was(story: Story, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    _one_line_error(
        story.pitr("--to", story.noted.isoformat(), "--target", str(occupied)),
        "is not an empty directory",
    )
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]

    fresh = tmp_path / "fresh"
    naive = story.noted.replace(tzinfo=None).isoformat()
    _one_line_error(story.pitr("--to", naive, "--target", str(fresh)), "has no time zone")
    _one_line_error(story.pitr("--to", "yesterday", "--target", str(fresh)), "not an ISO 8601")
    before = dt.datetime.fromisoformat(story.base["finished_at"]) - dt.timedelta(hours=1)
    _one_line_error(
        story.pitr("--to", before.isoformat(), "--target", str(fresh)),
        "is before the earliest base backup",
        story.base["id"],
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    _one_line_error(
        story.pitr("--to", later.isoformat(), "--target", str(fresh)),
        "nothing later than --to",
        "pg_switch_wal()",
    )
    _one_line_error(
        story.pitr("--to", story.noted.isoformat(), "--target", str(fresh),
                   "--base", "20990101T000000Z-base-000000"),
        "no base backup 20990101T000000Z-base-000000",
    )  # fmt: skip
    _one_line_error(
        story.pitr("--to", story.noted.isoformat(), "--target", str(fresh), "--start"),
        "needs --os-user",
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = str(busy.getsockname()[1])
        _one_line_error(
            story.pitr("--to", story.noted.isoformat(), "--target", str(fresh), "--start",
                       "--os-user", "postgres", "--port", taken),
            f"--port {taken} is in use",
        )  # fmt: skip
    assert not fresh.exists()


def test_base_refuses_a_sqlite_warehouse(tmp_path: Path) -> None:
    _one_line_error(timbel(["backup", "base"], tmp_path), "base backups are of a PostgreSQL")


def test_a_failed_base_backup_leaves_nothing_behind(tmp_path: Path) -> None:
    try:
        check_programs()
    except FileNotFoundError as error:
        missing_service(str(error))
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens
    failed = timbel(["backup", "base", "--connection", closed], tmp_path)
    _one_line_error(failed, "cannot connect to", "127.0.0.1")
    assert list((tmp_path / "base-backups").iterdir()) == []  # no .partial left


def test_a_damaged_base_backup_is_refused_before_the_target_is_touched(
    story: Story, tmp_path: Path
) -> None:
    copies = tmp_path / "base-backups"
    base_id = story.base["id"]
    shutil.copytree(story.base["path"], copies / base_id)
    shutil.copy(Path(story.base["path"]).with_suffix(".json"), copies)
    damaged = copies / base_id / "PG_VERSION"
    damaged.write_text(damaged.read_text().replace("15", "16"))
    target = tmp_path / "target"
    _one_line_error(
        story.pitr("--to", story.noted.isoformat(), "--target", str(target), "--dir", str(copies)),
        "pg_verifybackup",
        "PG_VERSION",
    )
    assert not target.exists()


def _as_postgresql_reads(settings: str, name: str) -> str:
    """The value PostgreSQL 15 reads for setting `name` from `settings` (`postgres -C`, as
    the postgres user, in a directory of its own: pytest's tmp_path is closed to it)."""
    conf = Path(tempfile.mkdtemp(prefix="timbel-conf-", dir="/tmp"))
    try:
        (conf / "postgresql.conf").write_text(settings)
        shutil.chown(conf, OS_USER)
        read = subprocess.run(
            ["runuser", "-u", OS_USER, "--", str(BINDIR / "postgres"), "-D", str(conf), "-C",
             name],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
    finally:
        shutil.rmtree(conf, ignore_errors=True)
    return read.stdout.removesuffix("\n")


@pytest.mark.parametrize("odd", ["it's mine", "back\\slash", "100% full", "tab\tand space"])
def test_restore_command_fetches_from_an_archive_with_an_awkward_path(
    odd: str, tmp_path: Path
) -> None:
    """The restore_command PostgreSQL reads from the settings, run as the server runs it
    (%f, %p and %% replaced, then `sh -c`), copies the segment out of an archive whose path
    has a quote, a backslash, a percent sign or blanks; the target time keeps its offset."""
    try:
        check_programs()
    except FileNotFoundError as error:
        missing_service(str(error))
    archive = tmp_path / odd / "wal archive"
    archive.mkdir(parents=True)
    (archive / "000000010000000000000003").write_text("segment 3")
    moment = dt.datetime(2026, 12, 5, 13, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    settings = recovery_settings(archive, moment, None)
    assert _as_postgresql_reads(settings, "recovery_target_time") == "2026-12-05 13:30:00+09:00"
    command = _as_postgresql_reads(settings, "restore_command")
    wanted = tmp_path / "RECOVERYXLOG"
    replace = {"%%": "%", "%f": "000000010000000000000003", "%p": str(wanted)}
    subprocess.run(["sh", "-c", re.sub("%[%fp]", lambda m: replace[m.group()], command)],
                   check=True, timeout=60)  # fmt: skip
    assert wanted.read_text() == "segment 3"


def test_a_role_without_an_ordinary_connection_is_told_before_the_copy(story: Story) -> None:
    """A role that pg_hba.conf lets in for replication only: pg_basebackup would copy, but
    the server's clock cannot be read; the command says so before copying anything."""
    cluster = story.cluster
    cluster.sql("CREATE ROLE replicator LOGIN REPLICATION")
    hba = cluster.data / "pg_hba.conf"
    lines = hba.read_text()
    try:
        hba.write_text(f"host postgres replicator 127.0.0.1/32 reject\n{lines}")
        cluster.sql("SELECT pg_reload_conf()")
        url = f"postgresql://replicator@127.0.0.1:{cluster.port}/postgres"
        base_dir = cluster.root / "replicator-bases"
        refused = timbel(["backup", "base", "--connection", url, "--dir", str(base_dir)], story)
        _one_line_error(refused, "cannot connect to", "pg_hba.conf", "replication")
        assert "pg_basebackup of" not in refused.stderr  # refused before the copy
        assert not base_dir.exists() or list(base_dir.iterdir()) == []
        # The other way round: it may connect but not replicate; pg_basebackup fails, and
        # its half-written copy is removed.
        cluster.sql("ALTER ROLE replicator NOREPLICATION")
        hba.write_text(lines)
        cluster.sql("SELECT pg_reload_conf()")
        failed = timbel(["backup", "base", "--connection", url, "--dir", str(base_dir)], story)
        _one_line_error(failed, "pg_basebackup failed", "replication")
        assert list(base_dir.iterdir()) == []  # no .partial left
    finally:
        hba.write_text(lines)
        cluster.sql("SELECT pg_reload_conf()")
        cluster.sql("DROP ROLE replicator")
