"""Base backups being written (`.ID.partial`), and which of them a killed copy abandoned
(docs/operations.md, "Point-in-time recovery", Retention).

A copy being written holds the base retention's WAL pruning back while it started before the
cut: once it finishes, recovery from it reads the WAL from its start. A copy killed half way
(out of memory, the pod evicted, the machine lost) leaves its `.ID.partial` for good, and would
hold the pruning back for good. The rule that tells them apart: a `.ID.partial` is abandoned
once its id, the time the copy started, is older than TIMBEL_BACKUP_ORPHAN_HOURS (48 h, as for
a logical backup's orphans: no copy runs that long) and its writer is not running on this host
(base_writer.py: a record from another host, or none, leaves the age alone to judge).
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timbel_dagster.warehouse.backup.base_writer import read_writer, writer_running
from timbel_dagster.warehouse.backup.basebackup import BASE_ID
from timbel_dagster.warehouse.backup.orphans import span
from timbel_dagster.warehouse.backup.store import time_of_id

PARTIAL = ".partial"
_LABEL_START = re.compile(r"^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$", re.MULTILINE)


@dataclass(frozen=True)
class Partial:
    """A base backup being written, or abandoned half way."""

    id: str
    path: Path
    # From its backup_label once that has arrived; '' when it cannot be read, None before.
    start_segment: str | None
    age: dt.timedelta
    writer: dict[str, Any] | None
    why: str
    abandoned: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "path": str(self.path), "start_segment": self.start_segment,
            "started_at": time_of_id(self.id).isoformat(),
            "age_hours": round(self.age.total_seconds() / 3600, 1),
            "writer": self.writer, "why": self.why, "abandoned": self.abandoned,
        }  # fmt: skip


def find_partials(directory: Path, *, now: dt.datetime, orphan_age: dt.timedelta) -> list[Partial]:
    """The `.ID.partial` copies in `directory`, oldest first, each saying whether it was
    abandoned (older than `orphan_age` and no writer running) and why."""
    found = []
    for partial in sorted(directory.glob(f".*{PARTIAL}") if directory.is_dir() else []):
        base_id = partial.name[1 : -len(PARTIAL)]
        if not BASE_ID.match(base_id) or not partial.is_dir():
            continue  # e.g. a `.NAME.XXXX.partial` file of a write in progress
        age = now - time_of_id(base_id)
        writer = read_writer(partial)
        why, abandoned = _judge(age, writer, orphan_age)
        found.append(
            Partial(base_id, partial, _start_segment(partial), age, writer, why, abandoned)
        )
    return found


def _judge(
    age: dt.timedelta, writer: dict[str, Any] | None, orphan_age: dt.timedelta
) -> tuple[str, bool]:
    """Why a copy is thought live or abandoned, and whether it is abandoned."""
    started = f"started {span(age)} ago"
    running = writer_running(writer)
    if running:
        return f"{started}, its writer (pid {writer['pid']} on this host) is running", False
    if age < orphan_age:
        return (
            f"{started}: it may still be copying; abandoned once {span(orphan_age)} old "
            "with no writer running"
        ), False
    if writer is None:
        gone = "no writer record"
    elif running is False:
        gone = f"its writer (pid {writer['pid']} on this host) has ended"
    elif writer["host"] != socket.gethostname():
        gone = f"written from host {writer['host']}, whose processes this host cannot see"
    else:
        gone = "written from another PID namespace (container) of this host, whose processes "
        gone += "this one cannot see"
    return f"{started}, {gone}: a copy killed half way", True


def _start_segment(partial: Path) -> str | None:
    """Where the copy starts in the WAL, from its backup_label once it has arrived; '' when it
    cannot be read, None before it arrives."""
    label = partial / "backup_label"
    if not label.exists():
        return None
    try:
        text = label.read_text(errors="replace")
    except OSError:
        text = ""
    start = _LABEL_START.search(text)
    return start.group(1) if start else ""
