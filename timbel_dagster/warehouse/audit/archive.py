"""Retention of the audit log: archive old events to a file, then delete them from the table.

An archive is a gzip-compressed JSON Lines file, one event per line in id order with its full
content (id, at, actor, action, target, details, prev_hash, hash), so its own chain can be
verified without the warehouse. Archiving happens in one transaction under the audit log's
append lock: the file is written atomically, an `audit_checkpoints` row records where the
archived chain ended (and the file's sha256), the rows are deleted and an `audit.archive`
event is appended. The newest event is never archived, so the chain's head stays in the table
and `verify_chain` continues from the checkpoint.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.audit.chain import (
    GENESIS_HASH,
    append_event,
    event_hash,
    event_record,
    latest_checkpoint,
    lock_chain,
    row_hash,
    verify_chain,
)
from timbel_dagster.warehouse.schema.deploy import AuditCheckpoint
from timbel_dagster.warehouse.schema.models import AuditEvent

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


_FIELDS = ("id", "at", "actor", "action", "target", "details", "prev_hash", "hash")


class AuditArchiveError(ValueError):
    """Archiving was refused or failed; nothing was archived. The message says why."""


@dataclass(frozen=True)
class ArchivePlan:
    """The events an archive with this cutoff would take: ids `first_id`..`last_id`."""

    events: int
    first_id: int | None
    last_id: int | None


@dataclass(frozen=True)
class ArchiveResult:
    events: int
    first_id: int | None
    last_id: int | None
    last_hash: str | None
    path: Path | None  # None when there was nothing to archive
    sha256: str | None
    remaining: int


@dataclass(frozen=True)
class ArchiveReport:
    """The result of checking one archive file on its own."""

    events: int
    first_id: int | None
    last_id: int | None
    last_hash: str | None
    first_broken_id: int | None
    reason: str | None

    @property
    def intact(self) -> bool:
        return self.reason is None


def plan_archive(connection: Connection, cutoff: dt.datetime) -> ArchivePlan:
    """The oldest events, in id order, up to the first one at or after `cutoff` or the newest
    event (which always stays). A contiguous run of ids keeps the checkpoint meaningful
    even if clocks of two writers disagreed a little."""
    from sqlalchemy import func, select

    if cutoff.tzinfo is None:
        raise ValueError(f"cutoff {cutoff.isoformat()} has no time zone")
    table = AuditEvent.__table__
    head = connection.execute(select(func.max(table.c.id))).scalar_one_or_none()
    if head is None:
        return ArchivePlan(0, None, None)
    recent = connection.execute(
        select(func.min(table.c.id)).where(table.c.at >= cutoff)
    ).scalar_one_or_none()
    stop = head if recent is None else min(head, recent)
    count, first, last = connection.execute(
        select(func.count(), func.min(table.c.id), func.max(table.c.id)).where(table.c.id < stop)
    ).one()
    return ArchivePlan(count, first, last)


def archive_before(
    engine: Engine, cutoff: dt.datetime, directory: Path, actor: str
) -> ArchiveResult:
    """Move the events older than `cutoff` (never the newest) to a file in `directory`.

    Refuses (AuditArchiveError) when the chain is broken, so tampered events are never
    sealed into an archive. If anything fails, nothing is deleted and the file is removed.
    """
    from sqlalchemy import delete, func, insert, select

    table = AuditEvent.__table__
    path: Path | None = None
    try:
        with engine.begin() as connection:
            lock_chain(connection)
            report = verify_chain(connection)
            if not report.intact:
                raise AuditArchiveError(
                    f"refusing to archive: the audit log is broken at event "
                    f"{report.first_broken_id}: {report.reason}"
                )
            plan = plan_archive(connection, cutoff)
            if not plan.events:
                return ArchiveResult(0, None, None, None, None, None, report.events)
            path = Path(directory) / f"audit-{plan.first_id:012d}-{plan.last_id:012d}.jsonl.gz"
            query = select(table).where(table.c.id <= plan.last_id).order_by(table.c.id)
            rows = connection.execute(query.execution_options(yield_per=2000)).mappings()
            sha256, last_hash = _write_atomically(path, (event_record(r) for r in rows))
            connection.execute(
                insert(AuditCheckpoint.__table__).values(
                    last_id=plan.last_id,
                    last_hash=last_hash,
                    events=plan.events,
                    archive=str(path.resolve()),
                    archive_sha256=sha256,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
            connection.execute(delete(table).where(table.c.id <= plan.last_id))
            append_event(
                connection,
                actor=actor,
                action="audit.archive",
                target=path.name,
                details={
                    "events": plan.events,
                    "first_id": plan.first_id,
                    "last_id": plan.last_id,
                    "last_hash": last_hash,
                    "cutoff": cutoff.astimezone(dt.UTC).isoformat(),
                    "archive": str(path.resolve()),
                    "sha256": sha256,
                },
            )
            remaining = connection.execute(select(func.count()).select_from(table)).scalar_one()
    except BaseException:
        if path is not None:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".partial").unlink(missing_ok=True)
        raise
    return ArchiveResult(
        plan.events, plan.first_id, plan.last_id, last_hash, path, sha256, remaining
    )


def _write_atomically(path: Path, records: Iterator[dict[str, Any]]) -> tuple[str, str]:
    """Write `records` as gzip JSON Lines to `path` (via `.partial`, fsynced, renamed);
    return the file's sha256 and the last record's hash."""
    partial = path.with_name(path.name + ".partial")
    last_hash = GENESIS_HASH
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as raw:
            # mtime=0: the same events always give the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as archive:
                for record in records:
                    line = json.dumps(record, sort_keys=True, separators=(",", ":"))
                    archive.write(line.encode() + b"\n")
                    last_hash = record["hash"]
            raw.flush()
            os.fsync(raw.fileno())
        sha256 = _file_sha256(partial)
        partial.replace(path)
        _fsync_directory(path.parent)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise AuditArchiveError(
            f"cannot write the audit archive {path}: {error.strerror or error}"
        ) from None
    return sha256, last_hash


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable; not every platform lets a directory be opened.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_archive(
    path: Path, expected_sha256: str | None, start_hash: str = GENESIS_HASH
) -> ArchiveReport:
    """Check an archive file: its sha256 (when given) and its own chain from `start_hash`
    (the `last_hash` of the checkpoint before it, or GENESIS_HASH for the first archive)."""
    path = Path(path)
    count, first_id, prev_id, expected_prev = 0, None, None, start_hash

    def report(bad_id: int | None, reason: str | None) -> ArchiveReport:
        last_hash = expected_prev if prev_id is not None else None
        return ArchiveReport(count, first_id, prev_id, last_hash, bad_id, reason)

    try:
        sha256 = _file_sha256(path)
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    record = json.loads(line)
                    event = {field: record[field] for field in _FIELDS}
                    event["at"] = dt.datetime.fromisoformat(record["at"])
                    event_id = int(record["id"])
                except (ValueError, KeyError, TypeError):
                    return report(None, f"line {number} is not an audit event")
                count += 1
                if prev_id is not None and event_id <= prev_id:
                    return report(event_id, f"event {event_id} follows event {prev_id}")
                if event["prev_hash"] != expected_prev:
                    before = f"event {prev_id}" if prev_id is not None else "the start hash"
                    reason = f"previous hash does not match {before}: events were removed, "
                    return report(event_id, reason + "inserted or reordered")
                if row_hash(event) != event["hash"]:
                    return report(event_id, "content does not match its hash")
                first_id = event_id if first_id is None else first_id
                prev_id, expected_prev = event_id, event["hash"]
    except FileNotFoundError:
        return report(None, f"archive file {path} is missing")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        return report(None, f"archive file {path} is unreadable: {error}")
    if expected_sha256 and sha256 != expected_sha256:
        return report(None, "the file's sha256 differs from the one recorded at archiving")
    return report(None, None)


def verify_archives(connection: Connection) -> list[tuple[Mapping[str, Any], ArchiveReport]]:
    """Check every checkpoint's archive file, in order: each must verify from the previous
    checkpoint's `last_hash` and end exactly at its own checkpoint."""
    from sqlalchemy import select

    table = AuditCheckpoint.__table__
    checkpoints = connection.execute(select(table).order_by(table.c.last_id)).mappings().all()
    results, start = [], GENESIS_HASH
    for checkpoint in checkpoints:
        found = verify_archive(Path(checkpoint["archive"]), checkpoint["archive_sha256"], start)
        recorded = (checkpoint["last_id"], checkpoint["last_hash"], checkpoint["events"])
        if found.intact and (found.last_id, found.last_hash, found.events) != recorded:
            found = ArchiveReport(
                found.events,
                found.first_id,
                found.last_id,
                found.last_hash,
                None,
                f"the file holds {found.events} events ending at event {found.last_id}; "
                f"the checkpoint recorded {checkpoint['events']} ending at "
                f"{checkpoint['last_id']} with hash {checkpoint['last_hash'][:12]}",
            )
        results.append((checkpoint, found))
        start = checkpoint["last_hash"]
    return results


# --- Dropping the audit log (`timbel db downgrade base`) -----------------------------------
class AuditLogInUseError(AuditArchiveError):
    """A schema downgrade would drop audit events that are in no archive; nothing changed."""


@dataclass(frozen=True)
class DropPlan:
    """What dropping the audit tables would lose, read before the downgrade runs."""

    unarchived: int  # events an archive can still move (the command refuses while > 0)
    checkpoints: int  # archive checkpoints the chain is verified from
    residue: list[dict[str, Any]]  # the events after the newest checkpoint, as archived
    start_hash: str  # what the first of them chains onto
    broken: str | None  # why the chain is broken, if it is


def plan_drop(connection: Connection) -> DropPlan:
    """The events a downgrade that drops `audit_events` would lose.

    Archiving never moves the newest event, and appends an `audit.archive` event of its own,
    so after `timbel audit archive --older-than 0` the table still holds those two. They are
    not counted as unarchived: `seal_dropped` writes them, and the downgrade's own event, to
    a final archive file instead.
    """
    from sqlalchemy import func, inspect, select

    lock_chain(connection)
    table = AuditEvent.__table__
    has_checkpoints = inspect(connection).has_table(AuditCheckpoint.__tablename__)
    checkpoint = latest_checkpoint(connection) if has_checkpoints else None
    last_id = checkpoint["last_id"] if checkpoint else 0
    after = table.c.id > last_id
    movable = connection.execute(
        select(func.count()).where(after, table.c.action != "audit.archive")
    ).scalar_one()
    checkpoints = 0
    if has_checkpoints:
        checkpoints = connection.execute(
            select(func.count()).select_from(AuditCheckpoint.__table__)
        ).scalar_one()
    unarchived = max(movable - 1, 0)
    residue: list[dict[str, Any]] = []
    broken = None
    if not unarchived:  # only then are the few events left read (and the chain checked)
        query = select(table).where(after).order_by(table.c.id)
        residue = [event_record(r) for r in connection.execute(query).mappings()]
        report = verify_chain(connection) if has_checkpoints else None
        if report is not None and not report.intact:
            broken = f"the audit log is broken at event {report.first_broken_id}: {report.reason}"
    start = checkpoint["last_hash"] if checkpoint else GENESIS_HASH
    return DropPlan(unarchived, checkpoints, residue, start, broken)


def seal_dropped(plan: DropPlan, directory: Path, actor: str, details: Mapping[str, Any]) -> Path:
    """Write the events `plan` found after the last archive, then a `db.downgrade` event
    chained onto them, to a final archive file in `directory`; its chain verifies with
    `verify_archive(path, None, plan.start_hash)`.

    Raises:
        AuditArchiveError: the chain is broken (nothing tampered is sealed) or the file
            cannot be written.
    """

    if plan.broken:
        raise AuditArchiveError(f"refusing to drop the audit log: {plan.broken}")
    prev_hash = plan.residue[-1]["hash"] if plan.residue else plan.start_hash
    last_id = plan.residue[-1]["id"] if plan.residue else 0
    at = dt.datetime.now(dt.UTC)
    payload = json.loads(json.dumps(dict(details), default=str))
    final = {
        "id": last_id + 1,
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "action": "db.downgrade",
        "target": "warehouse schema",
        "details": payload,
        "prev_hash": prev_hash,
        "hash": event_hash(prev_hash, at, actor, "db.downgrade", "warehouse schema", payload),
    }
    records = [*plan.residue, final]
    path = Path(directory) / (
        f"audit-{records[0]['id']:012d}-{final['id']:012d}-dropped-{at:%Y%m%dT%H%M%SZ}.jsonl.gz"
    )
    _write_atomically(path, iter(records))
    return path
