"""A throwaway PostgreSQL cluster of its own (initdb, pg_ctl) with WAL archiving on, for the
point-in-time recovery tests and benchmark.

PostgreSQL refuses to run as root, and these tests run as root: the cluster's programs run
as the `postgres` OS user (`runuser`), and everything the server touches lives in a directory
that user owns under /tmp. (pytest's tmp_path is not used for that: its base directory is
0700 root, and pytest resets it to 0700 whenever a run starts, so the server could not reach
it.) The directory is removed when the cluster stops.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

OS_USER = "postgres"
ROOT = Path(__file__).resolve().parents[2]
ARCHIVERS = {
    "timbel": "env PYTHONPATH={root} {python} -m "
    "timbel_dagster.warehouse.backup.archive_command %p %f {archive}",
    "cp": "test ! -f {archive}/%f && cp %p {archive}/%f",
}


def python_for_postgres() -> str:
    """An interpreter the postgres user may run: this one, unless it lives where that user
    cannot reach (a pyenv under /root), then the system's. archive_command.py imports only
    the standard library, so either runs it."""
    for python in (sys.executable, "/usr/bin/python3"):
        allowed = subprocess.run(["runuser", "-u", OS_USER, "--", "test", "-x", python],
                                 check=False)  # fmt: skip
        if allowed.returncode == 0:
            return python
    raise FileNotFoundError(f"no Python the {OS_USER} user may run, for archive_command")


VERSION = "15"
BINDIR = Path(f"/usr/lib/postgresql/{VERSION}/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", OS_USER, "--", *command],
        check=True, capture_output=True, text=True, timeout=300, **kwargs,
    )  # fmt: skip


def check_programs() -> None:
    """FileNotFoundError naming what is missing (the caller skips, or fails under CI)."""
    for program in ("initdb", "pg_ctl", "pg_basebackup", "pg_verifybackup", "pg_waldump"):
        if not os.access(BINDIR / program, os.X_OK):
            raise FileNotFoundError(f"{BINDIR / program} is missing (Debian: postgresql-15)")
    if shutil.which("runuser") is None:
        raise FileNotFoundError("runuser is missing (util-linux)")
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        raise FileNotFoundError(f"no `{OS_USER}` OS user to run PostgreSQL as") from None
    if os.geteuid() != 0:
        raise FileNotFoundError("these tests run PostgreSQL through runuser, which needs root")


@dataclass
class Cluster:
    root: Path  # owned by postgres: the data directory, the archive, recovered copies
    data: Path
    archive: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def sql(self, statement: str, port: int | None = None) -> list[tuple]:
        """Run one statement in autocommit (each is its own transaction); its rows."""
        import psycopg

        with closing(
            psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{port or self.port}/postgres", autocommit=True
            )
        ) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def wait_archived(self, segment: str, timeout: float = 60) -> None:
        """Poll pg_stat_archiver until `segment` (or a later one) is archived, bounded."""
        deadline = time.monotonic() + timeout
        while True:
            (last, failed), = self.sql(
                "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver"
            )  # fmt: skip
            if last is not None and last[:24] >= segment and (self.archive / segment).exists():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{segment} not archived in {timeout:.0f} s (last archived {last}, "
                    f"last failed {failed})"
                )
            time.sleep(0.1)

    def switch_and_archive(self) -> str:
        """Close the current segment and wait until it is archived; its name."""
        ((segment,),) = self.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        self.sql("SELECT pg_switch_wal()")
        self.wait_archived(segment)
        return segment

    def stop(self, data: Path | None = None) -> None:
        directory = data or self.data
        if (directory / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", OS_USER, "--", str(BINDIR / "pg_ctl"), "stop", "-D",
                 str(directory), "-m", "immediate", "-w"],
                capture_output=True, timeout=120, check=False,
            )  # fmt: skip


@contextmanager
def throwaway_cluster(*, fsync: bool = False, archiver: str = "timbel") -> Iterator[Cluster]:
    """initdb a new cluster with archive_mode on, on a free loopback port, start it, and stop
    and delete it afterwards, with every server started under its root (recovered copies
    too). `archiver`: `timbel`, the documented archive_command of this checkout
    (warehouse/backup/archive_command.py); `cp`, PostgreSQL's `test ! -f ... && cp` example."""
    check_programs()
    root = Path(tempfile.mkdtemp(prefix="timbel-pitr-", dir="/tmp"))
    user = pwd.getpwnam(OS_USER)
    os.chown(root, user.pw_uid, user.pw_gid)
    data, archive = root / "data", root / "archive"
    cluster = Cluster(root, data, archive, free_port())
    try:
        as_postgres(["mkdir", "-m", "0700", str(archive)])
        initdb = [str(BINDIR / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        as_postgres([*initdb, "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"])
        command = ARCHIVERS[archiver].format(
            root=ROOT, python=python_for_postgres(), archive=archive
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {cluster.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\n"
                "wal_level = replica\n"
                "archive_mode = on\n"
                f"archive_command = '{command}'\n"
                f"fsync = {'on' if fsync else 'off'}\n"
            )
        as_postgres([str(BINDIR / "pg_ctl"), "start", "-D", str(data), "-l",
                     str(root / "server.log"), "-w", "-t", "120"])  # fmt: skip
        yield cluster
    finally:
        for pid_file in root.glob("*/postmaster.pid"):
            cluster.stop(pid_file.parent)
        shutil.rmtree(root, ignore_errors=True)
