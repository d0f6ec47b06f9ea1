"""The `notifications` table: one row per event instance, channel and recipient.

The row is written before the first attempt, under a unique `dedupe_key`, so sending the same
event again is a no-op and two dispatchers racing on it send once. Every attempt is claimed
first with a compare-and-set on the row's attempt count, and holds a lease (`next_attempt_at`
moved ahead) while it runs: if the process dies mid-attempt, the row comes due again when
the lease ends instead of staying stuck.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.schema.notify import Notification

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

LEASE = dt.timedelta(minutes=10)  # far longer than a send's timeouts
DUE_STATUSES = ("pending", "retrying")
_KEY_LIMIT = 512  # the column's length


@dataclass(frozen=True)
class NotificationResult:
    """What became of one notification (one row of `notifications`).

    `duplicate` is true when the row was already there: this call did not send it again.
    """

    id: uuid.UUID
    dedupe_key: str
    event: str
    channel: str
    recipient: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    duplicate: bool = False


@dataclass(frozen=True)
class DueRow:
    """A row whose next attempt is due, with what is needed to send it again."""

    id: uuid.UUID
    channel: str
    recipient: str
    payload: dict[str, Any]
    attempts: int


def dedupe_key(message_key: str, channel: str, recipient: str) -> str:
    """The row's unique key; a message key too long for the column is replaced by its hash."""
    key = f"{channel}|{recipient}|{message_key}"
    if len(key) <= _KEY_LIMIT:
        return key
    return f"{channel}|{recipient}|sha256:{hashlib.sha256(message_key.encode()).hexdigest()}"


def _table() -> Any:
    return Notification.__table__


def _result(row: Any, duplicate: bool = False) -> NotificationResult:
    return NotificationResult(
        id=row.id,
        dedupe_key=row.dedupe_key,
        event=row.event,
        channel=row.channel,
        recipient=row.recipient,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        duplicate=duplicate,
    )


def _result_columns(table: Any) -> list[Any]:
    return [table.c[name] for name in NotificationResult.__dataclass_fields__ if name in table.c]


def insert_new(engine: Engine, rows: list[Mapping[str, Any]]) -> set[str]:
    """Insert the rows whose `dedupe_key` is new, in one statement; returns the keys inserted.

    `rows` must all have the same columns.
    """
    if not rows:
        return set()
    table = _table()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = (
            insert(table)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.dedupe_key)
        )
        return {row.dedupe_key for row in connection.execute(statement, list(rows))}


def fetch(engine: Engine, keys: Iterable[str], duplicate: bool = False) -> list[NotificationResult]:
    """The rows with these dedupe keys, in the order of `keys`."""
    from sqlalchemy import select

    keys = list(keys)
    if not keys:
        return []
    table = _table()
    with engine.connect() as connection:
        rows = connection.execute(
            select(*_result_columns(table)).where(table.c.dedupe_key.in_(keys))
        ).all()
    by_key = {row.dedupe_key: row for row in rows}
    return [_result(by_key[key], duplicate) for key in keys if key in by_key]


def due(engine: Engine, now: dt.datetime, limit: int) -> list[DueRow]:
    """Rows waiting for another attempt (or whose attempt's lease ran out), oldest first."""
    from sqlalchemy import select

    table = _table()
    query = (
        select(table.c.id, table.c.channel, table.c.recipient, table.c.payload, table.c.attempts)
        .where(table.c.status.in_(DUE_STATUSES), table.c.next_attempt_at <= now)
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [DueRow(*row) for row in connection.execute(query)]


def claim(engine: Engine, row_id: uuid.UUID, attempts: int, now: dt.datetime) -> bool:
    """Start attempt `attempts + 1` of a due row; False when another process got there first."""
    from sqlalchemy import update

    table = _table()
    statement = (
        update(table)
        .where(
            table.c.id == row_id,
            table.c.attempts == attempts,
            table.c.status.in_(DUE_STATUSES),
            table.c.next_attempt_at <= now,
        )
        .values(attempts=attempts + 1, next_attempt_at=now + LEASE)
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def finish(
    engine: Engine,
    row_id: uuid.UUID,
    *,
    status: str,
    last_error: str | None,
    next_attempt_at: dt.datetime | None,
    sent_at: dt.datetime | None,
    only_if_attempts: int | None = None,
) -> NotificationResult | None:
    """Record the outcome of an attempt; returns the row as it now is.

    With `only_if_attempts`, only when the row is still due with that many attempts (a
    compare-and-set for giving up on a row), else None.
    """
    from sqlalchemy import update

    table = _table()
    statement = update(table).where(table.c.id == row_id)
    if only_if_attempts is not None:
        statement = statement.where(
            table.c.attempts == only_if_attempts, table.c.status.in_(DUE_STATUSES)
        )
    statement = statement.values(
        status=status, last_error=last_error, next_attempt_at=next_attempt_at, sent_at=sent_at
    ).returning(*_result_columns(table))
    with engine.begin() as connection:
        row = connection.execute(statement).first()
    return _result(row) if row is not None else None


def history(
    engine: Engine, limit: int = 20, recipients: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The latest notifications, newest first (`timbel notify history`); `recipients`: only
    those sent to these addresses (a user's own deliveries)."""
    from sqlalchemy import select

    n = _table()
    query = (
        select(n.c.created_at, n.c.event, n.c.channel, n.c.recipient, n.c.status, n.c.attempts,
               n.c.last_error)
        .order_by(n.c.created_at.desc())
        .limit(limit)
    )  # fmt: skip
    if recipients is not None:
        query = query.where(n.c.recipient.in_(sorted(set(recipients))))
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


def history_of(engine: Engine, user: str, limit: int = 20) -> list[dict[str, Any]]:
    """`user`'s own deliveries, newest first: the e-mails sent to their address (a Slack
    notice goes to a channel, not to a person, so it is no one's own)."""
    from sqlalchemy import select

    with engine.connect() as connection:
        email = connection.execute(select(User.email).where(User.name == user)).scalar()
    return history(engine, limit, [email] if email else [])
