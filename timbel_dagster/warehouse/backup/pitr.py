"""Point-in-time recovery: a base backup plus archived WAL, replayed to a moment.

Everything that can be checked is checked before the target directory is touched: the
moment has a time zone and falls after a base backup's end; that base backup passes
`pg_verifybackup`; the WAL archive holds every segment from the backup's start to its newest
(wal.check_archive) and a commit later than the moment, without which recovery could never
reach it. Only then is the backup copied beside the target, given `recovery.signal` and its
recovery settings, and renamed into place, so a refused or failed recovery leaves the target
as it was; the staging directory is unique to the run, so two recoveries to one target never
remove each other's copy, and the second to finish is refused. The copy always listens on
`port`, on 127.0.0.1 only, so starting it by hand beside the running source does not clash
with the source's port. With `start`, the recovered server is started and followed until it
has reached the moment and been promoted, and the point where it stopped is read from its
log.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timbel_dagster.warehouse.backup.basebackup import (
    list_base_backups,
    pg_program,
    run_program,
)
from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.backup.recovered_server import (
    check_can_start,
    check_port_free,
    start_and_wait,
)
from timbel_dagster.warehouse.backup.wal import (
    ArchivedRun,
    WalArchiveError,
    check_archive,
    parse_lsn,
    parse_segment_name,
    segment_name,
)

Progress = Callable[[str], None]
_COMMIT = re.compile(r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


def _quiet(_line: str) -> None:
    pass


def parse_target_time(text: str) -> dt.datetime:
    """An ISO 8601 moment with its time zone (BackupError for a naive or malformed one)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BackupError(
            f"--to {text!r} is not an ISO 8601 time (like 2026-12-05T13:30:00+00:00)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BackupError(
            f"--to {text!r} has no time zone: add one (Z, +00:00, +09:00), since the server "
            "compares it with commit times in its own zone"
        )
    return moment


def choose_base(
    bases: list[dict[str, Any]], moment: dt.datetime, base_id: str | None, where: str
) -> dict[str, Any]:
    """The named base backup, or the latest that finished at or before `moment`."""
    usable = [b for b in bases if not b.get("problem")]
    if base_id is not None:
        named = [b for b in bases if b["id"] == base_id]
        if not named:
            raise LookupError(f"no base backup {base_id} in {where} (`timbel backup bases`)")
        if named[0].get("problem"):
            raise BackupError(f"base backup {base_id} is {named[0]['problem']}")
        usable = named
    if not usable:
        raise LookupError(f"no base backups in {where} (`timbel backup base` takes one)")
    before = [b for b in usable if dt.datetime.fromisoformat(b["finished_at"]) <= moment]
    if not before:
        first = min(usable, key=lambda b: b["finished_at"])
        which = "base backup" if base_id else "the earliest base backup,"
        raise BackupError(
            f"--to {moment.isoformat()} is before {which} {first['id']} finished "
            f"({first['finished_at']}): recovery cannot stop before a base backup's end"
        )
    return max(before, key=lambda b: b["finished_at"])


def latest_commit(
    archive: Path, run: ArchivedRun, segment_size: int, bindir: Path | None, version: str
) -> tuple[dt.datetime, str] | None:
    """The newest commit (or abort) time in the archived run and its segment, found by
    reading segments with pg_waldump from the newest back until one holds a commit."""
    waldump = pg_program("pg_waldump", bindir, version)
    timeline, last = parse_segment_name(run.last, segment_size)
    first = parse_segment_name(run.first, segment_size)[1]
    for segno in range(last, first - 1, -1):
        name = segment_name(timeline, segno, segment_size)
        if not (archive / name).exists():
            break  # an older timeline's segment: commits there are older still
        done = subprocess.run(  # nosec B603  # a fixed program, no shell
            [waldump, "--path", str(archive), "--rmgr=Transaction", name, name],
            capture_output=True, text=True, check=False, timeout=600,
            env={"TZ": "UTC", "LC_ALL": "C", "PATH": os.defpath},
        )  # fmt: skip
        # pg_waldump exits 1 at the segment's last record when it continues into a segment
        # not archived yet: what it printed before that is still sound.
        times = _COMMIT.findall(done.stdout)
        if times:
            moment = dt.datetime.fromisoformat(times[-1]).replace(tzinfo=dt.UTC)
            return moment, name
    return None


def _check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(
            f"--target {target} is not an empty directory: recovery writes a whole data "
            "directory and never over an existing one (choose a new path)"
        )


def recovery_settings(archive: Path, moment: dt.datetime, port: int | None) -> str:
    """The lines appended to the recovered copy's postgresql.auto.conf (which wins over
    postgresql.conf); with `port`, where the copy listens (127.0.0.1 only)."""
    if "\n" in str(archive):
        raise BackupError(f"--wal-dir {archive}: a path with a newline cannot be used")
    # The server replaces %% with %, and the shell reads the quoted path as it is.
    restore = f"cp {shlex.quote(str(archive).replace('%', '%%'))}/%f %p"
    lines = [
        "",
        f"# timbel backup pitr, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"restore_command = {_conf_string(restore)}",
        f"recovery_target_time = '{moment.isoformat(sep=' ')}'",
        # A transaction that committed exactly at the moment is part of it.
        "recovery_target_inclusive = on",
        "recovery_target_timeline = 'latest'",
        # Promote: the copy becomes a server of its own on a new timeline, to read from or
        # dump, while the source keeps running. (pause would hold it read-only in recovery.)
        "recovery_target_action = 'promote'",
        # The copy keeps the source's archive_command: it must never archive its new
        # timeline into the source's archive.
        "archive_mode = off",
    ]
    if port is not None:
        lines += [f"port = {port}", "listen_addresses = '127.0.0.1'"]
    return "\n".join(lines) + "\n"


def _conf_string(value: str) -> str:
    """`value` as a postgresql.conf string: quoted, with quotes doubled and backslashes
    doubled (the file's parser reads \\b, \\t, \\n and octal escapes in strings)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def recover_to_time(
    to: str,
    target: Path,
    *,
    base_dir: Path,
    wal_dir: Path,
    bindir: Path | None,
    base_id: str | None = None,
    start: bool = False,
    port: int = 5433,
    os_user: str | None = None,
    timeout: float = 600,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Recover the base backup chosen for moment `to` into data directory `target` (which
    must not exist or be empty), replaying `wal_dir`'s WAL to `to`, set to listen on `port`
    (127.0.0.1 only, not the source's port); with `start`, start it and wait until it has
    reached `to` and been promoted. What was done.

    Raises:
        BackupError: a bad moment, no fitting base backup, a failed check (WalArchiveError
            names a missing segment), or a server that stopped before reaching the moment;
            the target is untouched unless the recovered server was started.
    """
    moment = parse_target_time(to)
    target = target.absolute()
    _check_target(target)
    prefix = check_can_start(os_user) if start else []
    # Checked without `start` too: the copy is started by hand on that port later.
    check_port_free(port)
    base = choose_base(list_base_backups(base_dir), moment, base_id, str(base_dir))
    copy = Path(base["path"])
    if start and not (copy / "postgresql.conf").is_file():
        raise BackupError(
            f"base backup {base['id']} has no postgresql.conf (Debian keeps it in "
            "/etc/postgresql): recover without --start, copy the server's postgresql.conf "
            "and pg_hba.conf into the target, then start it with pg_ctl"
        )
    if any((copy / "pg_tblspc").iterdir()):
        raise BackupError(f"base backup {base['id']} has tablespaces, which pitr does not copy")
    progress(f"pg_verifybackup of base backup {base['id']}")
    run_program(
        [pg_program("pg_verifybackup", bindir, base["pg_version"]), "--quiet", str(copy)],
        f"pg_verifybackup {copy}",
    )
    run = check_archive(
        [p.name for p in wal_dir.iterdir()] if wal_dir.is_dir() else [],
        str(wal_dir),
        start_lsn=parse_lsn(base["start_lsn"]),
        timeline=base["timeline"],
        segment_size=base["wal_segment_size"],
        read_history=lambda t: _read_history(wal_dir, t),
    )
    newest = latest_commit(wal_dir, run, base["wal_segment_size"], bindir, base["pg_version"])
    if newest is None or newest[0] <= moment:
        ends = f"ends at a commit of {newest[0].isoformat()} ({newest[1]})" if newest else (
            "holds no commit after the base backup"
        )  # fmt: skip
        raise WalArchiveError(
            f"the WAL archive {wal_dir} {ends}: nothing later than --to {moment.isoformat()} "
            "is archived, so recovery could not tell it had reached it; archive the current "
            "segment (SELECT pg_switch_wal() on the server) or choose an earlier time"
        )
    settings = recovery_settings(wal_dir, moment, port)
    _materialize(copy, target, settings, os_user if start else None, progress, base["id"])
    done: dict[str, Any] = {
        "base": base["id"],
        "target": str(target),
        "to": moment.isoformat(),
        "wal": {"first": run.first, "last": run.last, "segments": run.count,
                "timeline": run.timeline, "newest_commit": newest[0].isoformat()},
        "started": False,
        "port": port,
    }  # fmt: skip
    if start:
        progress(f"starting the recovered server on 127.0.0.1:{port}")
        done |= start_and_wait(target, base["pg_version"], bindir, prefix, timeout)
        done |= {"started": True}
    return done


def _read_history(archive: Path, timeline: int) -> str | None:
    path = archive / f"{timeline:08X}.history"
    return path.read_text() if path.is_file() else None


def _materialize(
    copy: Path,
    target: Path,
    settings: str,
    os_user: str | None,
    progress: Progress = _quiet,
    base_id: str = "",
) -> None:
    """Copy the base backup beside the target, configure it, then rename it into place.

    The staging directory's name is the run's own (`.TARGET.pitr-XXXXXXXX`): another
    recovery to the same target keeps its copy. One killed half way leaves its staging
    behind, to remove by hand (the progress line names it); none can tell it from a live
    one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp: mode 0700, as PostgreSQL wants its data directory.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.pitr-", dir=target.parent))
    progress(f"copying base backup {base_id} to {staging}, then renaming it to {target}")
    try:
        shutil.copytree(copy, staging, symlinks=True, dirs_exist_ok=True)
        with (staging / "postgresql.auto.conf").open("a") as conf:
            conf.write(settings)
        (staging / "recovery.signal").touch()
        staging.chmod(0o700)
        if os_user:
            for path in [staging, *staging.rglob("*")]:
                shutil.chown(path, os_user, os_user)
        # rename(2) replaces an empty directory: the target appears whole or not at all, and
        # one that another recovery filled meanwhile is not replaced.
        try:
            staging.replace(target)
        except OSError as error:
            raise BackupError(
                f"--target {target} is no longer an empty directory ({error.strerror}): "
                "another recovery to it finished first; nothing of this one was kept"
            ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
