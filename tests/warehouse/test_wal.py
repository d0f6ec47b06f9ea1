"""The WAL as files (warehouse/backup/wal.py): segment names, the archive check recovery
relies on (with timeline switches), and the archive_command that never overwrites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import invoke
from timbel_dagster.warehouse.backup import basebackup
from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.backup.wal import (
    WalArchiveError,
    archive_wal_file,
    check_archive,
    format_lsn,
    parse_lsn,
    parse_segment_name,
    segment_name,
    timeline_path,
)

MB16 = 16 << 20
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("timeline", "lsn", "size", "name"),
    [
        (1, "0/2000028", MB16, "000000010000000000000002"),
        (1, "0/FF000000", MB16, "0000000100000000000000FF"),
        (2, "1/0", MB16, "000000020000000100000000"),
        (3, "1/3FFFFFF", 1 << 20, "00000003000000010000003F"),  # initdb --wal-segsize=1
        (1, "A/80000000", 1 << 30, "000000010000000A00000002"),
    ],
)
def test_segment_names_are_postgresqls(timeline: int, lsn: str, size: int, name: str) -> None:
    segno = parse_lsn(lsn) // size
    assert segment_name(timeline, segno, size) == name
    assert parse_segment_name(name, size) == (timeline, segno)
    assert format_lsn(parse_lsn(lsn)) == lsn


@pytest.mark.parametrize("bad", ["", "0", "x/1", "0/2000028/1"])
def test_a_bad_lsn_is_refused(bad: str) -> None:
    with pytest.raises(BackupError, match="is not a WAL location"):
        parse_lsn(bad)


def _seg(timeline: int, segno: int) -> str:
    return segment_name(timeline, segno, MB16)


def _check(names: list[str], histories: dict[int, str] | None = None, start: int = 0x2000028):
    return check_archive(
        names,
        "/archive",
        start_lsn=start,
        timeline=1,
        segment_size=MB16,
        read_history=lambda t: (histories or {}).get(t),
    )


def test_a_contiguous_run_is_accepted_from_the_start_segment() -> None:
    # An older segment before the base backup's start is not needed (nor its absence).
    run = _check([_seg(1, n) for n in (2, 3, 4, 5)] + ["000000010000000000000002.00000028.backup"])
    assert (run.first, run.last, run.count, run.timeline) == (_seg(1, 2), _seg(1, 5), 4, 1)


@pytest.mark.parametrize(
    ("present", "missing", "location"),
    [
        ((2, 3, 5, 6), 4, "0/4000000"),
        ((3, 4, 5), 2, "0/2000000"),
        ((), 2, "0/2000000"),
        ((1,), 2, "0/2000000"),
    ],
)
def test_the_first_missing_segment_is_named(
    present: tuple[int, ...], missing: int, location: str
) -> None:
    with pytest.raises(WalArchiveError) as raised:
        _check([_seg(1, n) for n in present])
    assert f"WAL segment {_seg(1, missing)} is missing from /archive" in str(raised.value)
    assert f"recovery cannot pass {location}" in str(raised.value)


def test_a_timeline_switch_is_followed_as_recovery_follows_it() -> None:
    # Promoted at 0/4800000: timeline 1 up to segment 3, timeline 2 from segment 4 on.
    history = {2: "1\t0/4800000\tno recovery target specified\n"}
    names = [_seg(1, n) for n in (2, 3, 4)] + [_seg(2, n) for n in (4, 5)] + ["00000002.history"]
    run = _check(names, history)
    assert (run.first, run.last, run.count, run.timeline) == (_seg(1, 2), _seg(2, 5), 4, 2)
    without = [n for n in names if n != _seg(2, 4)]
    with pytest.raises(WalArchiveError, match=f"{_seg(2, 4)} is missing.*cannot pass 0/4000000"):
        _check(without, history)


def test_a_base_backup_off_the_newest_timeline_is_refused() -> None:
    # Timeline 2 branched off timeline 1 at 0/1800000, before this base backup started.
    history = {2: "1\t0/1800000\tbefore the backup\n"}
    with pytest.raises(WalArchiveError, match="is not in the history of timeline 2"):
        _check([_seg(1, 2), _seg(2, 1), _seg(2, 2), "00000002.history"], history)


def test_timeline_path_reads_every_switch() -> None:
    spans = timeline_path(3, "1\t0/3000000\tx\n2\t0/5000000\ty\n")
    assert [(s.timeline, s.begin, s.end) for s in spans] == [
        (1, 0, 0x3000000),
        (2, 0x3000000, 0x5000000),
        (3, 0x5000000, None),
    ]
    with pytest.raises(WalArchiveError, match="bad line"):
        timeline_path(2, "one 0/1\n")


def test_archive_wal_file_copies_once_accepts_a_retry_and_never_overwrites(
    tmp_path: Path,
) -> None:
    segment = tmp_path / "pg_wal" / _seg(1, 7)
    segment.parent.mkdir()
    segment.write_bytes(os.urandom(4096))
    archive = tmp_path / "archive"
    assert archive_wal_file(segment, segment.name, archive) is True
    assert (archive / segment.name).read_bytes() == segment.read_bytes()
    # PostgreSQL retries a segment whose archiving it did not see finish: the same file is
    # a success, and changes nothing.
    assert archive_wal_file(segment, segment.name, archive) is False
    other = tmp_path / "other"
    other.write_bytes(os.urandom(4096))
    with pytest.raises(BackupError, match="exists and differs"):
        archive_wal_file(other, segment.name, archive)
    assert (archive / segment.name).read_bytes() == segment.read_bytes()
    with pytest.raises(BackupError, match="is not a WAL file name"):
        archive_wal_file(segment, "../escape", archive)
    assert sorted(p.name for p in archive.iterdir()) == [segment.name]  # no temporary left


def test_archive_wal_is_an_archive_command(tmp_path: Path) -> None:
    data = tmp_path / "pgdata"
    (data / "pg_wal").mkdir(parents=True)
    (data / "pg_wal" / "00000002.history").write_text("1\t0/4800000\tpromoted\n")
    archive = tmp_path / "archive"
    # As PostgreSQL runs it: in the data directory, %p relative to it.
    args = ["backup", "archive-wal", "pg_wal/00000002.history", "00000002.history"]
    done = invoke([*args, "--wal-dir", str(archive)], data)
    assert done.returncode == 0, done.stderr
    assert (archive / "00000002.history").read_text().startswith("1\t0/4800000")
    (data / "pg_wal" / "00000002.history").write_text("changed")
    refused = invoke([*args, "--wal-dir", str(archive)], data)
    assert refused.returncode == 2 and "exists and differs" in refused.stderr


def test_the_fast_archive_command_needs_only_the_standard_library(tmp_path: Path) -> None:
    """archive_command runs once per segment: its module must load nothing but wal.py and
    the standard library (so it starts in a tenth of `timbel`'s time, with any Python;
    `-S` keeps site-packages' start-up hooks out of the count)."""
    probe = (
        "import sys; import timbel_dagster.warehouse.backup.archive_command; "
        "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)"
        " - {'__main__', 'timbel_dagster'}))"
    )
    loaded = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True,
                            check=True, cwd=ROOT)  # fmt: skip
    assert loaded.stdout.strip() == "[]"
    segment = tmp_path / _seg(1, 9)
    segment.write_bytes(b"\x01" * 512)
    module = [sys.executable, "-m", "timbel_dagster.warehouse.backup.archive_command"]
    archive = str(tmp_path / "archive")
    for _ in range(2):  # a retry of an archived segment succeeds
        done = subprocess.run([*module, str(segment), segment.name, archive], cwd=ROOT)
        assert done.returncode == 0
    segment.write_bytes(b"\x02" * 512)
    refused = subprocess.run([*module, str(segment), segment.name, archive], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 1 and "exists and differs" in refused.stderr


def test_a_program_on_path_is_used_when_its_major_version_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside Debian's layout (no /usr/lib/postgresql/MAJOR/bin), TIMBEL_PG_BINDIR unset:
    the program on PATH is used, as docs/configuration.md says, if it is of the data
    directory's major version; another major is refused, naming TIMBEL_PG_BINDIR."""
    monkeypatch.setattr(basebackup, "DEBIAN_BINDIRS", tmp_path / "no-debian")
    bindir = tmp_path / "pgsql-15" / "bin"
    bindir.mkdir(parents=True)
    program = bindir / "pg_verifybackup"
    program.write_text("#!/bin/sh\necho 'pg_verifybackup (PostgreSQL) 15.10'\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert basebackup.pg_program("pg_verifybackup", None, "15") == str(program)
    assert basebackup.pg_program("pg_verifybackup", None) == str(program)
    with pytest.raises(BackupError, match="PostgreSQL 16's server programs; set TIMBEL_PG_BINDIR"):
        basebackup.pg_program("pg_verifybackup", None, "16")
