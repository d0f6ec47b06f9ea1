"""Anchors of the audit log's head, recorded outside the warehouse.

The hash chain shows an edited or reordered event, but not the newest events deleted
together: what is left still chains. Only the head recorded somewhere the warehouse's users
cannot rewrite shows that (`verify_chain(anchor=...)`). Two places record it:
- the weekly audit report's `head_anchor`, in Dagster's event log (its own database in a
  deployment; `timbel audit verify` reads the newest report there);
- the anchor file (TIMBEL_AUDIT_ANCHOR_FILE, default TIMBEL_HOME/audit-anchors.jsonl), one JSON
  line per anchor, appended by `timbel audit verify --record` (an operator's cron) and by
  backups. Append-only by convention: keep it on storage the database's users cannot write.

`timbel audit verify` checks the newest anchor of either place by itself; `--anchor ID:HASH`
checks a given one instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

_HASH = re.compile(r"^[0-9a-f]{64}$")


class AnchorError(ValueError):
    """An anchor, or a line of the anchor file, is not what it must be; the message says
    which and where."""


@dataclass(frozen=True)
class RecordedAnchor:
    """An anchor and where it was recorded (`source`: e.g. `audit report 2026-11-23` or
    `anchor file line 12`)."""

    event_id: int
    event_hash: str
    recorded_at: dt.datetime | None
    source: str

    @property
    def pinned(self) -> tuple[int, str]:
        return self.event_id, self.event_hash

    @property
    def text(self) -> str:
        return f"{self.event_id}:{self.event_hash}"


def parse_anchor(value: str, what: str = "anchor") -> tuple[int, str]:
    """`ID:HASH` as (id, hash); AnchorError naming `what` for anything else."""
    event_id, sep, digest = value.strip().partition(":")
    digest = digest.lower()
    if not sep or not event_id.isdigit() or not _HASH.match(digest):
        raise AnchorError(f"{what} {value!r} is not ID:HASH (an event id and its 64-hex hash)")
    return int(event_id), digest


def newest(anchors: list[RecordedAnchor | None]) -> RecordedAnchor | None:
    """The anchor of the latest event among those given (ids only grow)."""
    found = [a for a in anchors if a is not None]
    return max(found, key=lambda a: a.event_id) if found else None


class AnchorFile:
    """The append-only file of recorded anchors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, anchor: tuple[int, str], by: str, now: dt.datetime | None = None) -> None:
        """Add one line, flushed to disk before returning (an anchor that is lost in a crash
        protects nothing)."""
        event_id, event_hash = anchor
        line = json.dumps(
            {
                "id": event_id,
                "hash": event_hash,
                "recorded_at": (now or dt.datetime.now(dt.UTC)).isoformat(),
                "by": by,
            }
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (line + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def newest(self) -> RecordedAnchor | None:
        """The anchor of the latest event in the file; None without a file or lines.

        Raises:
            AnchorError: a line is not an anchor (the file was edited or damaged: that is
                itself a finding, so it is not skipped).
        """
        if not self.path.exists():
            return None
        found: list[RecordedAnchor | None] = []
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    found.append(self._parse(line, number))
        return newest(found)

    def _parse(self, line: str, number: int) -> RecordedAnchor:
        where = f"{self.path} line {number}"
        try:
            record = json.loads(line)
            event_id, event_hash = parse_anchor(f"{record['id']}:{record['hash']}", where)
            recorded_at = dt.datetime.fromisoformat(record["recorded_at"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            if isinstance(error, AnchorError):
                raise
            raise AnchorError(f"{where} is not an anchor record: {error}") from None
        return RecordedAnchor(event_id, event_hash, recorded_at, f"anchor file line {number}")
