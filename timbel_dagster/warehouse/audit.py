"""The hash-chained audit log.

Each event stores the hash of the event before it and its own hash over that and its content,
so an edited or deleted row breaks the chain at a point `verify_chain` can name. Events are
appended on the caller's connection, inside the same transaction as the change they record.
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


def _event_hash(
    prev_hash: str, at: dt.datetime, actor: str, action: str, target: str | None, details: Any
) -> str:
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


def append_event(
    connection: Connection,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> str:
    """Append one event after the current head of the chain and return its hash."""
    from sqlalchemy import insert, select, text

    from timbel_dagster.warehouse.models import AuditEvent

    if connection.dialect.name == "postgresql":
        # Serialise appenders so that two transactions never chain onto the same head.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY})
    table = AuditEvent.__table__
    head = connection.execute(
        select(table.c.hash).order_by(table.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = head or GENESIS_HASH
    at = dt.datetime.now(dt.UTC)
    payload = json.loads(json.dumps(dict(details or {}), default=str))
    digest = _event_hash(prev_hash, at, actor, action, target, payload)
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


@dataclass(frozen=True)
class ChainReport:
    events: int
    first_broken_id: int | None
    reason: str | None

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def verify_chain(connection: Connection) -> ChainReport:
    """Recompute every hash in id order and report the first event that does not match."""
    from sqlalchemy import select

    from timbel_dagster.warehouse.models import AuditEvent

    table = AuditEvent.__table__
    expected_prev = GENESIS_HASH
    count = 0
    rows = connection.execute(select(table).order_by(table.c.id)).mappings()
    for row in rows:
        count += 1
        if row["prev_hash"] != expected_prev:
            return ChainReport(count, row["id"], "previous hash does not match the event before")
        digest = _event_hash(
            row["prev_hash"], row["at"], row["actor"], row["action"], row["target"], row["details"]
        )
        if digest != row["hash"]:
            return ChainReport(count, row["id"], "content does not match its hash")
        expected_prev = row["hash"]
    return ChainReport(count, None, None)
