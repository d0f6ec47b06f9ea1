"""The hash-chained audit log.

Each event stores the hash of the event before it and its own hash over that and its content,
so an edited or deleted row breaks the chain at a point `verify_chain` can name. Events are
appended on the caller's connection, inside the same transaction as the change they record.

What the chain guarantees, and what it does not:
- An edited row (content no longer matching its hash), a deleted row in the middle, rows
  swapped or moved, and a forged row inserted anywhere but after the newest event are found,
  and the first such event is named.
- Ids may have gaps: PostgreSQL spends a sequence value on every rolled-back append, so a
  gap alone is not tampering. Continuity is carried by the hashes, not by the ids.
- Deleting the newest events (truncating the head) leaves a shorter chain that is still
  valid; only an anchor recorded outside the table (`verify_chain(anchor=...)`, for example
  the head that each weekly `audit/audit_report` records in Dagster's event log) shows it.
  Likewise someone able to rewrite every hash after a point is only caught by an anchor.
- Archived events leave the table; `audit_checkpoints` records where they ended, and the
  remaining chain is verified from the newest checkpoint (see `audit_archive`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

GENESIS_HASH = "0" * 64
# Any constant works; it only has to be the same for every writer of the audit log.
_APPEND_LOCK_KEY = 71_530_017
# Actors that act on their own (runs, sensors); every other actor is a person.
# Actors that are not people: scheduled and sensor runs, the CLI itself, and runs launched
# from the Dagster UI (whose `timbel/actor` tag is only a claim; jobs/run_actor.py).
SYSTEM_ACTORS = ("dagster", "timbel", "dagster-ui")


def event_hash(
    prev_hash: str, at: dt.datetime, actor: str, action: str, target: str | None, details: Any
) -> str:
    """The hash of one event: over the previous event's hash and this event's content."""
    content = json.dumps(
        {
            "prev": prev_hash,
            "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target": target,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(content.encode()).hexdigest()


def row_hash(row: Mapping[str, Any]) -> str:
    """The hash an event row should carry, recomputed from its stored content."""
    return event_hash(
        row["prev_hash"], row["at"], row["actor"], row["action"], row["target"], row["details"]
    )


def lock_chain(connection: Connection) -> None:
    """Hold the audit log's append lock until the transaction ends.

    On PostgreSQL an advisory transaction lock; on SQLite the warehouse engine starts every
    writing transaction with BEGIN IMMEDIATE, which already serialises writers.
    """
    from sqlalchemy import text

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY})


def append_event(
    connection: Connection,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> str:
    """Append one event after the current head of the chain and return its hash."""
    from sqlalchemy import insert, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import AuditEvent

    # Serialise appenders so that two transactions never chain onto the same head.
    lock_chain(connection)
    table = AuditEvent.__table__
    head = connection.execute(
        select(table.c.hash).order_by(table.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    # An empty table chains onto GENESIS even after archiving: were the events after a
    # checkpoint deleted, chaining onto the checkpoint would hide it.
    prev_hash = head or GENESIS_HASH
    at = dt.datetime.now(dt.UTC)
    payload = json.loads(json.dumps(dict(details or {}), default=str))
    digest = event_hash(prev_hash, at, actor, action, target, payload)
    connection.execute(
        insert(table).values(
            at=at,
            actor=actor,
            action=action,
            target=target,
            details=payload,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    return digest


def event_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One event as plain JSON-ready data (the archive's line format and `search` output)."""
    return {
        "id": row["id"],
        "at": row["at"].astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": row["actor"],
        "action": row["action"],
        "target": row["target"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


def latest_checkpoint(connection: Connection) -> Mapping[str, Any] | None:
    """The newest archive checkpoint (where the archived part of the chain ended), if any."""
    from sqlalchemy import select

    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import AuditCheckpoint

    table = AuditCheckpoint.__table__
    return (
        connection.execute(select(table).order_by(table.c.last_id.desc()).limit(1))
        .mappings()
        .one_or_none()
    )


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying the events still in the table.

    `events` counts the events checked; `first_broken_id` and `reason` name the first bad one
    (`first_broken_id` is None when no single event can be named, e.g. a vanished head).
    """

    events: int
    first_broken_id: int | None
    reason: str | None
    head_id: int | None = None
    head_hash: str | None = None
    checkpoint_id: int | None = None  # the last archived event the check started after

    @property
    def intact(self) -> bool:
        return self.reason is None

    @property
    def anchor(self) -> str | None:
        """`ID:HASH` of the head: record it elsewhere to detect a truncated log later."""
        return f"{self.head_id}:{self.head_hash}" if self.head_id is not None else None


def _broken_link(connection: Connection, row: Mapping[str, Any], before: str) -> str:
    """Why `row` does not chain onto the event before it, as precisely as the table shows."""
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import AuditEvent

    table = AuditEvent.__table__
    if row["prev_hash"] == GENESIS_HASH:
        return f"it starts a new chain after {before}: it was inserted, or events were rewritten"
    found = connection.execute(
        select(table.c.id).where(table.c.hash == row["prev_hash"])
    ).scalar_one_or_none()
    if found is None:
        return (
            f"previous hash does not match {before}, nor any event left: an event before it "
            "was deleted or rewritten, or it was inserted"
        )
    if found > row["id"]:
        return f"previous hash is that of later event {found}: events were reordered"
    return (
        f"previous hash is that of event {found}, not of {before}: events were inserted or "
        "reordered"
    )


def verify_chain(connection: Connection, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Recompute every hash in id order and report the first event that does not match.

    Verification starts from the newest archive checkpoint when there is one: the first event
    after it must chain onto the checkpoint's `last_hash`.

    Args:
        connection: a warehouse connection.
        anchor: `(id, hash)` of an event recorded earlier outside the table (for example the
            `head_anchor` of an audit report); it must still be there, unchanged, unless it
            was archived.
    """
    from sqlalchemy import func, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import AuditEvent

    table = AuditEvent.__table__
    checkpoint = latest_checkpoint(connection)
    start_id = checkpoint["last_id"] if checkpoint else None
    expected_prev = checkpoint["last_hash"] if checkpoint else GENESIS_HASH
    if start_id is not None:
        stray = connection.execute(
            select(func.min(table.c.id)).where(table.c.id <= start_id)
        ).scalar_one_or_none()
        if stray is not None:
            return ChainReport(
                0,
                stray,
                f"event {stray} is at or before the archive checkpoint (event {start_id}) yet "
                "still in the table: it was inserted after archiving",
                checkpoint_id=start_id,
            )
    query = select(table).order_by(table.c.id)
    if start_id is not None:
        query = query.where(table.c.id > start_id)
    count, prev_id, head_id = 0, start_id, None
    bad: tuple[dict[str, Any], str | None] | None = None
    with connection.execute(query.execution_options(yield_per=2000)) as result:
        for row in result.mappings():
            count += 1
            if row["prev_hash"] != expected_prev:
                bad = (dict(row), None)  # explained below, once the cursor is closed
                break
            if row_hash(row) != row["hash"]:
                bad = (dict(row), "content does not match its hash")
                break
            expected_prev, prev_id, head_id = row["hash"], row["id"], row["id"]
    if bad is not None:
        row, reason = bad
        if reason is None:
            before = "the start of the log" if prev_id is None else f"event {prev_id}"
            if prev_id is not None and prev_id == start_id:
                before = f"the archive checkpoint (event {start_id})"
            reason = _broken_link(connection, row, before)
        return ChainReport(count, row["id"], reason, checkpoint_id=start_id)
    head_hash = expected_prev if head_id is not None else None
    if checkpoint and head_id is None:
        # Archiving always leaves the newest event in the table.
        reason = f"no event is left after the archive checkpoint (event {start_id}): the "
        reason += "newest events were deleted"
        return ChainReport(0, None, reason, checkpoint_id=start_id)
    if anchor is not None:
        reason = _check_anchor(connection, anchor, checkpoint)
        if reason:
            return ChainReport(count, anchor[0], reason, head_id, head_hash, start_id)
    return ChainReport(count, None, None, head_id, head_hash, start_id)


def _check_anchor(
    connection: Connection, anchor: tuple[int, str], checkpoint: Mapping[str, Any] | None
) -> str | None:
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import AuditEvent

    anchor_id, anchor_hash = anchor
    if checkpoint and anchor_id <= checkpoint["last_id"]:
        if anchor_id == checkpoint["last_id"] and anchor_hash != checkpoint["last_hash"]:
            return f"anchored event {anchor_id} ends an archive with a different hash"
        return None  # archived: `verify_archive` checks the file
    table = AuditEvent.__table__
    found = connection.execute(
        select(table.c.hash).where(table.c.id == anchor_id)
    ).scalar_one_or_none()
    if found is None:
        return f"anchored event {anchor_id} is gone: the events up to it were deleted"
    if found != anchor_hash:
        return f"anchored event {anchor_id} has another hash than recorded: it was rewritten"
    return None


def search_events(
    connection: Connection,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Events still in the table that match every filter given, newest first.

    Args:
        actor: exactly this actor.
        action: this action or, ending in `.` or `*`, every action with that prefix; a plain
            name also matches its sub-actions (`alerts` matches `alerts.silence`).
        target: a case-insensitive substring of the target.
        since: events at or after this moment; until: events before it.
        limit: at most this many events (1 or more).
        before_id: only events with a smaller id (the next page after an event; the
            primary key's order, so a deep page costs what the first does).
    """
    from sqlalchemy import func, or_, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import AuditEvent

    if limit < 1:
        raise ValueError(f"limit must be 1 or more, not {limit}")
    if since and until and since >= until:
        raise ValueError(f"since ({since:%Y-%m-%d %H:%M}) must be before until")
    table = AuditEvent.__table__
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if actor:
        query = query.where(table.c.actor == actor)
    if action:
        if action.endswith(("*", ".")):
            query = query.where(table.c.action.startswith(action.rstrip("*"), autoescape=True))
        else:
            query = query.where(
                or_(
                    table.c.action == action,
                    table.c.action.startswith(f"{action}.", autoescape=True),
                )
            )
    if target:
        query = query.where(func.lower(table.c.target).contains(target.lower(), autoescape=True))
    if since:
        query = query.where(table.c.at >= since)
    if until:
        query = query.where(table.c.at < until)
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    return [event_record(row) for row in connection.execute(query).mappings()]
