"""What the warehouse's audit log says of base backups: the newest one taken (`backup.base`)
and the newest one that failed (`backup.base_fail`), as base_record.py appends them. The
`backup_monitor` rules `base-backup-stale` and `base-backup-failed` read it (notify/facts.py).

Base backups have no catalogue (base_record.py says why): their events are the record. One
query reads the newest event of each action: the index on `audit_events.action` finds the
rows of the two actions alone (about one a week, as many as the audit retention,
TIMBEL_AUDIT_RETENTION_DAYS, keeps), whatever else the log holds. "Newest" is the chain's
order (the id): events are appended one at a time under the chain's lock, so it is also the
order of their `at`. Events archived out of the table are not seen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from timbel_dagster.warehouse.schema.models import AuditEvent

BASE_TAKEN, BASE_FAILED = "backup.base", "backup.base_fail"


@dataclass(frozen=True)
class BaseBackupEvent:
    """One base backup event: when, its target (the base backup's id; None for a failure)
    and its details (a failure's `error`)."""

    id: int
    at: dt.datetime
    target: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class BaseBackupState:
    """The newest base backup taken and the newest that failed, at a moment."""

    taken: BaseBackupEvent | None
    failed: BaseBackupEvent | None
    first_attempt_at: dt.datetime | None  # None: no base backup was ever tried here

    @property
    def latest_failed(self) -> bool:
        """Whether the newest attempt failed (no base backup was taken after it)."""
        return self.failed is not None and (self.taken is None or self.failed.id > self.taken.id)


def base_backup_state(connection: Connection, now: dt.datetime) -> BaseBackupState:
    """The base backups' state at `now` (events after it are not seen yet)."""
    table = AuditEvent.__table__
    newest = (
        select(
            table.c.action,
            func.max(table.c.id).label("id"),
            func.min(table.c.at).label("first_at"),
        )
        .where(table.c.action.in_((BASE_TAKEN, BASE_FAILED)), table.c.at <= now)
        .group_by(table.c.action)
        .subquery()
    )
    rows = connection.execute(
        select(
            table.c.id, table.c.action, table.c.at, table.c.target, table.c.details,
            newest.c.first_at,
        ).join(newest, newest.c.id == table.c.id)
    ).all()  # fmt: skip
    events = {
        row.action: BaseBackupEvent(row.id, row.at, row.target, dict(row.details or {}))
        for row in rows
    }
    firsts = [row.first_at for row in rows]
    return BaseBackupState(
        taken=events.get(BASE_TAKEN),
        failed=events.get(BASE_FAILED),
        first_attempt_at=min(firsts) if firsts else None,
    )
