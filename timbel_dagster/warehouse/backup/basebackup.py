"""Base backups of a whole PostgreSQL cluster with `pg_basebackup`, the start of every
point-in-time recovery (docs/operations.md, "Point-in-time recovery").

A base backup is a plain-format copy of the data directory (`--format=plain`: PostgreSQL
15's `pg_verifybackup` checks only that format) with the WAL written during the copy streamed
beside it (`--wal-method=stream`, so the copy is consistent on its own) and a backup manifest
holding every file's SHA-256. It is written as `DIR/.ID.partial`, checked with
`pg_verifybackup`, renamed to `DIR/ID`, and only then described by `DIR/ID.json` (where it
starts in the WAL, on which timeline, when it finished by the server's clock): a backup
without its `.json` is incomplete and never chosen. While it is written, `.ID.partial.writer`
names the process writing it (base_writer.py), for the retention to tell it from a copy that
was killed half way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from timbel_dagster.settings import display_url
from timbel_dagster.warehouse.backup import sources
from timbel_dagster.warehouse.backup.base_writer import claim, release
from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.backup.store import DirectoryStore, new_backup_id, time_of_id
from timbel_dagster.warehouse.backup.wal import format_lsn, parse_lsn, segment_name

BASE_ID = re.compile(r"^\d{8}T\d{6}Z-base-[0-9a-f]{6}$")
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def pg_program(name: str, bindir: Path | None, version: str | None = None) -> str:
    """The path of PostgreSQL program `name`: in `bindir` (TIMBEL_PG_BINDIR) when set, else
    in Debian's directory for `version` (the server programs must match the data
    directory's major version), else the newest Debian one, else on PATH (when `version` is
    given, only if its `--version` is of that major version)."""
    if bindir is not None:
        found = bindir / name
        if not os.access(found, os.X_OK):
            raise BackupError(f"{name} is not in TIMBEL_PG_BINDIR ({bindir})")
        return str(found)
    majors = [version] if version else sorted(
        (p.name for p in DEBIAN_BINDIRS.glob("*") if p.name.isdigit()), key=int, reverse=True
    )  # fmt: skip
    for major in majors:
        found = DEBIAN_BINDIRS / major / "bin" / name
        if os.access(found, os.X_OK):
            return str(found)
    on_path = shutil.which(name)
    if on_path and (version is None or _major_version(on_path) == version):
        return on_path
    wanted = f"PostgreSQL {version}'s " if version else "PostgreSQL's "
    raise BackupError(
        f"{name} is not installed ({wanted}server programs; set TIMBEL_PG_BINDIR to their "
        "directory, e.g. /usr/lib/postgresql/15/bin)"
    )


def _major_version(program: str) -> str | None:
    """`15` from `pg_verifybackup (PostgreSQL) 15.10`; None when it does not say."""
    try:
        said = subprocess.run(  # nosec B603  # a fixed program, no shell
            [program, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\(PostgreSQL\) (\d+)", said)
    return found.group(1) if found else None


def run_program(
    command: list[str], what: str, *, env: dict[str, str] | None = None, timeout: float = 24 * 3600
) -> str:
    """Run a PostgreSQL program; its stdout, or BackupError with its last line of stderr."""
    done = subprocess.run(  # nosec B603  # a fixed program, no shell
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        # The first `error:` line says what failed; the lines after it are hints.
        errors = [line for line in lines if "error:" in line or "FATAL" in line]
        said = (errors or lines or ["no message"])[0 if errors else -1]
        raise BackupError(f"{what} failed (exit {done.returncode}): {said}")
    return done.stdout


def control_data(data_directory: Path, bindir: Path | None) -> dict[str, str]:
    """`pg_controldata` of a data directory (a base backup's copy of it), as a dict."""
    version = (data_directory / "PG_VERSION").read_text().strip()
    output = run_program(
        [pg_program("pg_controldata", bindir, version), "-D", str(data_directory)],
        f"pg_controldata {data_directory}",
        env={"LC_ALL": "C", "PATH": os.defpath},
    )
    pairs = (line.partition(":") for line in output.splitlines())
    return {key.strip(): value.strip() for key, _, value in pairs}


def read_backup_label(text: str) -> dict[str, str]:
    """The `KEY: value` lines of a backup_label file."""
    fields = {}
    for line in text.splitlines():
        key, separator, value = line.partition(": ")
        if separator:
            fields[key.strip()] = value.strip()
    return fields


def describe(copy: Path, bindir: Path | None) -> dict[str, Any]:
    """Where a base backup starts and ends in the WAL, from its backup_label, its manifest's
    WAL range and its control file."""
    label = read_backup_label((copy / "backup_label").read_text())
    manifest = json.loads((copy / "backup_manifest").read_text())
    ranges = manifest.get("WAL-Ranges") or [{}]
    start = parse_lsn(label["START WAL LOCATION"].split()[0])
    timeline = int(label["START TIMELINE"])
    segment_size = int(control_data(copy, bindir)["Bytes per WAL segment"])
    return {
        "start_lsn": format_lsn(start),
        "end_lsn": ranges[-1].get("End-LSN"),
        "timeline": timeline,
        "start_segment": segment_name(timeline, start // segment_size, segment_size),
        "wal_segment_size": segment_size,
        "start_time": label.get("START TIME"),
        "label": label.get("LABEL"),
        "pg_version": (copy / "PG_VERSION").read_text().strip(),
    }


def _server_now(url: str) -> dt.datetime:
    """The server's clock, through an ordinary connection (not a replication one)."""
    try:
        connection = sources._pg_connect(url)
    except BackupError as error:
        if "pg_hba.conf" not in str(error):
            raise
        raise BackupError(
            f"{error} (a base backup reads the server's clock through an ordinary connection "
            "to that database: pg_hba.conf needs a line for it besides the replication one)"
        ) from None
    with closing(connection):
        return connection.execute("SELECT clock_timestamp()").fetchone()[0]


def take_base_backup(
    url: str, directory: Path, *, bindir: Path | None, progress: Progress = _quiet
) -> dict[str, Any]:
    """Take a verified base backup of the cluster at `url` into `directory`; its metadata.

    The connecting role needs the REPLICATION attribute and pg_hba.conf a `replication`
    line, and an ordinary one for the URL's database (the server's clock is read through
    it, checked before the copy starts). The end is the server's clock right after the copy
    ended, so a recovery target at or after it is always past the backup's consistent point.
    """
    conninfo, environment = sources.libpq(url)
    now = dt.datetime.now(dt.UTC)
    backup_id = new_backup_id("base", now)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = directory / f".{backup_id}.partial"
    tool = pg_program("pg_basebackup", bindir)
    _server_now(url)  # a role that may only replicate is refused before the copy, not after
    # Empty, as pg_basebackup wants it; then the record of who writes it, beside it.
    partial.mkdir(mode=0o700)
    try:
        claim(partial)
        progress(f"pg_basebackup of {display_url(url)} into {partial}")
        run_program(
            [
                tool,
                "--pgdata", str(partial),
                "--format=plain",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--manifest-checksums=SHA256",
                f"--label=timbel {backup_id}",
                "--no-password",
                "--dbname", conninfo,
            ],
            "pg_basebackup",
            env=environment,
        )  # fmt: skip
        finished = _server_now(url)
        progress("pg_verifybackup: every file's SHA-256 and the WAL")
        version = (partial / "PG_VERSION").read_text().strip()
        run_program(
            [pg_program("pg_verifybackup", bindir, version), "--quiet", str(partial)],
            f"pg_verifybackup {partial}",
        )
        described = describe(partial, bindir)
        size = sum(f.stat().st_size for f in partial.rglob("*") if f.is_file())
        # The record goes first, here and below: it never outlives its copy.
        release(partial)
        partial.rename(directory / backup_id)
    except BaseException:
        with contextlib.suppress(OSError):  # the copy's own error is the one raised
            release(partial)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    metadata = {
        "id": backup_id,
        "created_at": now.isoformat(),
        "finished_at": finished.astimezone(dt.UTC).isoformat(),
        "source": display_url(url),
        "tool": run_program([tool, "--version"], "pg_basebackup --version").strip(),
        "format": "plain, WAL streamed, manifest with SHA-256 checksums",
        **described,
        "size": size,
        "path": str(directory / backup_id),
    }
    # Written whole or not at all (a temporary file, fsynced, renamed into place).
    DirectoryStore(directory).put(f"{backup_id}.json", [json.dumps(metadata, indent=2).encode()])
    return metadata


def list_base_backups(directory: Path) -> list[dict[str, Any]]:
    """The complete base backups in `directory` (a directory and its `.json`), oldest
    first; one whose metadata cannot be read is listed with `problem` saying why."""
    if not directory.is_dir():
        return []
    found = []
    for meta in sorted(directory.glob("*.json")):
        backup_id = meta.name.removesuffix(".json")
        if not BASE_ID.match(backup_id):
            continue
        try:
            metadata = json.loads(meta.read_text())
            if not (directory / backup_id).is_dir():
                raise ValueError(f"its directory {directory / backup_id} is missing")
            dt.datetime.fromisoformat(metadata["finished_at"])
            parse_lsn(metadata["start_lsn"])
        except (ValueError, KeyError, BackupError) as error:
            found.append({"id": backup_id, "problem": f"unreadable: {error}"})
            continue
        found.append(metadata | {"path": str(directory / backup_id), "problem": None})
    # Oldest first by when each started: ids hold whole seconds, and the random part after
    # them would order two base backups started in the same second by chance.
    return sorted(found, key=_started)


def _started(base: dict[str, Any]) -> tuple[dt.datetime, str]:
    started = base.get("created_at")
    return (dt.datetime.fromisoformat(started) if started else time_of_id(base["id"]), base["id"])
