"""High-water marks of CI builds for the build sensors. Plain Python: tests call it directly.

A mark says: every build of this pipeline numbered up to here is stored in the warehouse and
finished. The sensor requests one run per batch of new builds (one batch in flight at a time);
when that run has ended, the marks move only as far as the warehouse confirms was stored, so
a failed or partial run never moves a mark past data that is not there. What is still missing
is requested again as the next batch, under a new run key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field

from timbel_dagster.records.marks import StoredMark


@dataclass
class Pending:
    run_key: str
    upto: dict[str, int]  # pipeline -> newest build number the batch asked for
    requested_at: str  # ISO time


@dataclass
class BuildCursor:
    marks: dict[str, int] = field(default_factory=dict)
    days: dict[str, str] = field(default_factory=dict)  # pipeline -> day of its mark build
    pending: Pending | None = None
    batches: int = 0  # numbers the batches, so a retried range gets a new run key

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> BuildCursor:
        if not text:
            return cls()
        data = json.loads(text)
        pending = Pending(**data["pending"]) if data.get("pending") else None
        return cls(data.get("marks", {}), data.get("days", {}), pending, data.get("batches", 0))


@dataclass(frozen=True)
class Decision:
    cursor: BuildCursor
    run_key: str | None = None
    days: tuple[str, str] | None = None  # first and last daily partition to read
    builds: int = 0  # how many new builds the batch covers
    skip_reason: str | None = None
    confirmed: dict[str, int] = field(default_factory=dict)  # marks moved this tick


def confirm(cursor: BuildCursor, stored: dict[str, StoredMark]) -> dict[str, int]:
    """Move the pending batch's marks as far as the warehouse confirms; clear the batch."""
    moved: dict[str, int] = {}
    assert cursor.pending is not None
    for pipeline in cursor.pending.upto:
        found = stored.get(pipeline)
        if found and found.mark > cursor.marks.get(pipeline, 0):
            cursor.marks[pipeline] = found.mark
            if found.day:
                cursor.days[pipeline] = found.day
            moved[pipeline] = found.mark
    cursor.pending = None
    return moved


def plan(
    system: str,
    latest: dict[str, int],
    cursor: BuildCursor,
    now: dt.datetime,
    initial_days: int = 2,
    max_days: int = 7,
) -> Decision:
    """The next batch: every pipeline whose newest build is above its mark.

    Args:
        system: `jenkins` or `gitlab`, for run keys and messages.
        latest: newest build number of each pipeline, as the server reports it now.
        cursor: the cursor after `confirm` (no batch pending).
        now: the tick's time.
        initial_days: how far back a pipeline seen for the first time is read.
        max_days: the oldest day a batch reads; older gaps are a backfill (`timbel ingest`).
    """
    today = now.date()
    floor = (today - dt.timedelta(days=max_days)).isoformat()
    new = {p: n for p, n in sorted(latest.items()) if n > cursor.marks.get(p, 0)}
    if not new:
        return Decision(cursor, skip_reason=f"no new {system} builds in {len(latest)} pipelines")
    first_day = min(
        cursor.days.get(p) or (today - dt.timedelta(days=initial_days)).isoformat() for p in new
    )
    days = (max(first_day, floor), today.isoformat())
    cursor.batches += 1
    digest = hashlib.sha1(
        json.dumps(new, sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()[:12]
    run_key = f"{system}-builds-{cursor.batches}-{digest}"
    cursor.pending = Pending(run_key, new, now.isoformat())
    count = sum(n - cursor.marks.get(p, 0) for p, n in new.items())
    return Decision(cursor, run_key=run_key, days=days, builds=count)
