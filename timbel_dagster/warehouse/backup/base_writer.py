"""Who is writing a base backup: the record `.ID.partial.writer` beside its `.ID.partial` copy
(docs/operations.md, "Point-in-time recovery", Retention).

pg_basebackup leaves nothing that says a copy is still running: it holds no lock, writes no pid
file (the server's `postmaster.pid` is left out of the copy), and only writes into an empty
directory. So `take_base_backup` writes this record: the host and pid of its own process (the
one that runs pg_basebackup and renames the copy when it has been verified), and, on Linux, when
that process started. It sits beside the copy, not in it: pg_basebackup refuses a directory
that is not empty, and pg_verifybackup would take any extra file in it for one the manifest
lacks. It is written once the empty `.ID.partial` exists and removed before that is renamed or
removed, so it never outlives its copy; a copy killed half way keeps it.

The base retention reads it to tell a copy still being written from one a killed process left:
its writer runs when that pid is alive on this host and is the same process (the start time
tells a pid the kernel gave to a later process). A record from another host, or from another
PID namespace of this one (a container sharing the host's network, and so its name), says
nothing: those processes cannot be seen from here. A copy without one is judged by its age
alone.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

WRITER_SUFFIX = ".writer"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def writer_path(partial: Path) -> Path:
    """`.ID.partial.writer`, the record of the copy `partial` (`.ID.partial`)."""
    return partial.with_name(partial.name + WRITER_SUFFIX)


def claim(partial: Path) -> None:
    """Record this process as the writer of the copy `partial`."""
    pid = os.getpid()
    record = {"host": socket.gethostname(), "pid": pid, "process": process_start(pid),
              "pid_namespace": pid_namespace()}  # fmt: skip
    writer_path(partial).write_text(json.dumps(record))


def release(partial: Path) -> None:
    """Remove the writer record of the copy `partial` (nothing when there is none)."""
    writer_path(partial).unlink(missing_ok=True)


def read_writer(partial: Path) -> dict[str, Any] | None:
    """The writer record of the copy `partial`; None when there is none or it cannot be read."""
    try:
        record = json.loads(writer_path(partial).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("host"), str):
        return None
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None  # never signal 0 or a negative pid: they name process groups
    return record


def writer_running(record: dict[str, Any] | None) -> bool | None:
    """Whether the process a writer record names is still running: None when this host cannot
    tell (no record, one written on another host, or in another PID namespace: containers
    that share the host's network, Kubernetes' hostNetwork, share its host name too)."""
    if record is None or record["host"] != socket.gethostname():
        return None
    recorded_namespace = record.get("pid_namespace")
    if recorded_namespace is not None and recorded_namespace != pid_namespace():
        return None
    pid = record["pid"]
    try:
        os.kill(pid, 0)  # signal 0: is there such a process, nothing sent
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # there is one, another user's
    recorded, now = record.get("process"), process_start(pid)
    # The same pid started at another moment (or boot) is a later process given that pid.
    return recorded is None or now is None or recorded == now


def pid_namespace() -> int | None:
    """The inode of this process's PID namespace (Linux), None where there is none to read:
    pids mean the same process only inside one namespace."""
    try:
        return Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """`BOOT_ID:TICKS`, the boot and the clock tick after it at which process `pid` started
    (Linux's /proc): no other process with that pid has both. None when it cannot be read."""
    try:
        boot = _BOOT_ID.read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # `PID (COMM) STATE ...`: COMM may hold spaces and parentheses; starttime is field 22,
    # the 20th after COMM.
    fields = stat[stat.rfind(")") + 1 :].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None
