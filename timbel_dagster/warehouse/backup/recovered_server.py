"""The recovered server: started as a user PostgreSQL accepts, followed until recovery has
reached its target and promoted, and its log read for where recovery stopped."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from timbel_dagster.warehouse.backup.basebackup import control_data, pg_program, run_program
from timbel_dagster.warehouse.backup.crypto import BackupError

_STOPPED = re.compile(r"recovery stopping (?:before|after) .*")
_LAST = re.compile(r"last completed transaction was at log time .*")
_POLL_SECONDS = 0.2
RECOVERY_LOG = "pitr-recovery.log"


def check_can_start(os_user: str | None) -> list[str]:
    """The prefix that runs the server's programs as `os_user` (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        if not os_user or os_user == "root":
            raise BackupError(
                "--start as root needs --os-user (PostgreSQL refuses to run as root), e.g. "
                "--os-user postgres: the target is then owned by that user"
            )
        return ["runuser", "-u", os_user, "--"]
    if os_user and pwd.getpwuid(os.geteuid()).pw_name != os_user:
        raise BackupError("--os-user other than the current user needs root")
    return []


def check_port_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise BackupError(
                f"--port {port} is in use on 127.0.0.1: choose a free one for the recovered server"
            ) from None


def start_and_wait(
    target: Path, version: str, bindir: Path | None, prefix: list[str], timeout: float
) -> dict[str, Any]:
    """Start the recovered server and wait until its control file says it is in
    production (recovery reached the moment and promoted); the recovery's end from the log."""
    log = target / RECOVERY_LOG
    started = time.monotonic()
    pg_ctl = pg_program("pg_ctl", bindir, version)
    stop = shlex.join([*prefix, pg_ctl, "stop", "-D", str(target)])
    command = [*prefix, pg_ctl, "start", "-D", str(target), "-l", str(log), "-w",
               "-t", str(int(timeout))]  # fmt: skip
    try:
        run_program(command, "pg_ctl start", timeout=timeout + 30)
    except (BackupError, subprocess.TimeoutExpired) as error:
        failed = error if isinstance(error, BackupError) else "pg_ctl start did not return"
        # `-w` gave up waiting (pg_ctl: "server did not start in time"), not the server:
        # a long recovery may still be replaying, with the target's postmaster.pid.
        if _running(target) or "did not start in time" in str(failed):
            raise BackupError(
                f"{failed}: the recovered server may still be starting (replaying WAL) or "
                f"running; follow {log}, and stop it with: {stop}"
            ) from None
        raise BackupError(f"{failed}; {_log_problem(log)}") from None
    deadline = started + timeout
    while True:
        state = control_data(target, bindir).get("Database cluster state", "")
        if state == "in production":
            break
        if not _running(target):
            raise BackupError(f"the recovered server stopped: {_log_problem(log)}")
        if time.monotonic() > deadline:
            raise BackupError(
                f"the recovered server had not reached the moment after {timeout:.0f} s "
                f"(state: {state}); it is still running, see {log}; stop it with: {stop}"
            )
        time.sleep(_POLL_SECONDS)
    text = log.read_text(errors="replace") if log.exists() else ""
    stopped, last = _STOPPED.findall(text), _LAST.findall(text)
    return {
        "recovery_stop": stopped[-1] if stopped else None,
        "last_transaction": last[-1] if last else None,
        "recovery_seconds": round(time.monotonic() - started, 3),
        "log": str(log),
    }


def _running(target: Path) -> bool:
    try:
        pid = int((target / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _log_problem(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    fatal = [line for line in lines if "FATAL" in line or "PANIC" in line]
    return f"{(fatal or lines or ['no log'])[-1].strip()} (log: {log})"
