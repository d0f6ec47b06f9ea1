"""The `backups` catalogue table: what the warehouse knows of its own backups.

Rows are written by create (good), by a create that failed (failed, with the error; no file)
and by the retention: `pruning` before it deletes anything of a backup, `pruned` once every
file of it is gone. A row left `pruning` is how the next prune knows that data without a
manifest is what an earlier prune failed to delete (orphans.py). The `ops/backups` asset
and the `backup_monitor` rules read `catalogue_state`. A warehouse older than revision 0024
has no catalogue, and one at 0024 no status column: writes skip what is not there, so a
backup of an old schema still works.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, inspect, select, update
from sqlalchemy.engine import Connection, make_url

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.backups import BackupRecord

GOOD, FAILED, PRUNING, PRUNED = "good", "failed", "pruning", "pruned"
_ERROR_CHARS = 2000


def _columns(connection: Connection) -> set[str]:
    """The catalogue's columns in this warehouse (empty without the table)."""
    inspector = inspect(connection)
    if not inspector.has_table(BackupRecord.__tablename__):
        return set()
    return {c["name"] for c in inspector.get_columns(BackupRecord.__tablename__)}


def has_status(connection: Connection) -> bool:
    """Whether the catalogue has its status (revision 0025 on)."""
    return "status" in _columns(connection)


def record_good(
    connection: Connection, manifest: dict[str, Any], location: str, actor: str
) -> None:
    """The row of a backup just made (in the caller's transaction)."""
    columns = _columns(connection)
    if not columns:
        return
    head = manifest["audit_head"] or {}
    values = {
        "id": manifest["id"],
        "created_at": dt.datetime.fromisoformat(manifest["created_at"]),
        "created_by": actor,
        "source": manifest["source"],
        "location": location,
        "size": manifest["size"] + ((manifest.get("dagster") or {}).get("size") or 0),
        "sha256": manifest["sha256"],
        "rows": manifest["rows"],
        "tables": manifest["tables"],
        "schema_revision": manifest["schema_revision"],
        "audit_head_id": head.get("id"),
        "audit_head_hash": head.get("hash"),
        "status": GOOD,
    }
    connection.execute(
        insert(BackupRecord).values({k: v for k, v in values.items() if k in columns})
    )


def no_warehouse(database_url: str) -> bool:
    """A SQLite warehouse whose file does not exist: nothing to read, and none to create only
    to record a backup in."""
    url = make_url(database_url)
    return url.get_backend_name() == "sqlite" and not Path(str(url.database)).is_file()


def record_failed(
    database_url: str,
    backup_id: str,
    *,
    created_at: dt.datetime,
    source: str,
    location: str,
    actor: str,
    error: BaseException,
) -> bool:
    """A failed backup's row and a `backup.fail` audit event, in their own transaction; False
    when the warehouse cannot take it (unreachable, or a schema without the status column:
    the caller's error is what matters then, so this never raises)."""
    message = (f"{type(error).__name__}: {error}")[:_ERROR_CHARS]
    if no_warehouse(database_url):
        return False
    try:
        with get_engine(database_url).begin() as connection:
            if "status" not in _columns(connection):
                return False
            connection.execute(
                insert(BackupRecord).values(
                    id=backup_id, created_at=created_at, created_by=actor, source=source,
                    location=location, size=0, sha256="", rows=0, tables={}, status=FAILED,
                    error=message,
                )
            )  # fmt: skip
            append_event(
                connection, actor=actor, action="backup.fail", target=backup_id,
                details={"error": message},
            )  # fmt: skip
    except Exception:  # the backup's own error is raised by the caller
        return False
    return True


def read_statuses(database_url: str) -> dict[str, str] | None:
    """Every catalogued backup's status by id; None when the warehouse has no catalogue with a
    status (none at all, or before 0025). An unreachable warehouse raises."""
    if no_warehouse(database_url):
        return None
    with get_engine(database_url).connect() as connection:
        if "status" not in _columns(connection):
            return None
        table = BackupRecord.__table__
        return dict(connection.execute(select(table.c.id, table.c.status)).tuples().all())


def _move(
    connection: Connection, backup_ids: list[str], before: tuple[str, ...], **values: Any
) -> int:
    if not backup_ids or "status" not in _columns(connection):
        return 0
    result = connection.execute(
        update(BackupRecord)
        .where(BackupRecord.id.in_(backup_ids), BackupRecord.status.in_(before))
        .values(**values)
    )
    return int(result.rowcount or 0)


def mark_pruning(connection: Connection, backup_ids: list[str]) -> int:
    """Good backups the retention is about to delete (committed before the store is touched,
    so a delete that fails half way is remembered); how many rows changed."""
    return _move(connection, backup_ids, (GOOD,), status=PRUNING)


def mark_kept(connection: Connection, backup_ids: list[str]) -> int:
    """Back to good: backups left `pruning` whose manifest is still there (nothing of them was
    deleted) and that the retention now keeps (its counts were raised)."""
    return _move(connection, backup_ids, (PRUNING,), status=GOOD)


def mark_pruned(connection: Connection, backup_ids: list[str], at: dt.datetime) -> int:
    """Mark the rows of backups whose files the retention deleted, all of them; how many rows
    changed (a failed backup stays failed: it never was a backup to prune)."""
    return _move(connection, backup_ids, (GOOD, PRUNING), status=PRUNED, pruned_at=at)


@dataclass(frozen=True)
class CatalogueState:
    """The catalogue at a moment: what `ops/backups` records and the monitor's rules read."""

    last_good_at: dt.datetime | None
    last_good_id: str | None
    last_good_size: int | None
    good: int  # backups kept in the store (good: not pruning, not pruned)
    failed_last_day: int
    first_attempt_at: dt.datetime | None  # None: no backup was ever tried here
    latest_id: str | None
    latest_status: str | None
    latest_error: str | None

    def metadata(self, now: dt.datetime) -> dict[str, Any]:
        age = (now - self.last_good_at).total_seconds() / 3600 if self.last_good_at else None
        return {
            "last_good_backup": self.last_good_id or "none",
            "last_good_at": self.last_good_at.isoformat() if self.last_good_at else "none",
            "last_good_age_hours": round(age, 2) if age is not None else -1.0,
            "last_good_bytes": self.last_good_size or 0,
            "good_backups": self.good,
            "failed_last_24h": self.failed_last_day,
            "latest_status": self.latest_status or "none",
        }


def catalogue_state(connection: Connection, now: dt.datetime) -> CatalogueState | None:
    """The state of the catalogue at `now`; None for a warehouse without one (before 0025)."""
    if "status" not in _columns(connection):
        return None
    table = BackupRecord.__table__
    good = connection.execute(
        select(table.c.id, table.c.created_at, table.c.size)
        .where(table.c.status == GOOD, table.c.created_at <= now)
        .order_by(table.c.created_at.desc()).limit(1)
    ).first()  # fmt: skip
    latest = connection.execute(
        select(table.c.id, table.c.status, table.c.error)
        .where(table.c.status.not_in((PRUNING, PRUNED)), table.c.created_at <= now)
        .order_by(table.c.created_at.desc()).limit(1)
    ).first()  # fmt: skip
    kept, first = connection.execute(
        select(func.count().filter(table.c.status == GOOD), func.min(table.c.created_at))
    ).one()
    failed = connection.execute(
        select(func.count()).where(
            table.c.status == FAILED, table.c.created_at > now - dt.timedelta(days=1),
            table.c.created_at <= now,
        )
    ).scalar_one()  # fmt: skip
    return CatalogueState(
        last_good_at=good.created_at if good else None,
        last_good_id=good.id if good else None,
        last_good_size=good.size if good else None,
        good=int(kept or 0),
        failed_last_day=int(failed or 0),
        first_attempt_at=first,
        latest_id=latest.id if latest else None,
        latest_status=latest.status if latest else None,
        latest_error=latest.error if latest else None,
    )
