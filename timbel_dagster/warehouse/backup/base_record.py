"""Base backups in the warehouse's audit log: `backup.base` for one taken, `backup.base_fail`
for one that failed, `backup.base_prune` for what the base retention deleted (base backups, the
copies a killed base backup abandoned, with their age and why, and the archived WAL).

The audit log lives in the warehouse, often in the very cluster a base backup copies: the
event is appended after the copy finished, so a base backup never holds its own event (as a
logical backup never holds its own catalogue row), and a point-in-time recovery replays up to
a moment, not to the event. A warehouse that is not a Timbel one (no audit log, or a SQLite
file that does not exist) records nothing. `pitr` records nothing: it writes a new data
directory, and the warehouse it would write to may be the one being recovered.

The `backups` catalogue is not used: its rows are the encrypted logical backups, whose
`backup_monitor` rules would take a base backup for one. The monitor's base backup rules read
these events instead (base_state.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from timbel_dagster.settings import display_url
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup.base_state import BASE_FAILED, BASE_TAKEN
from timbel_dagster.warehouse.backup.basebackup import Progress, take_base_backup
from timbel_dagster.warehouse.backup.catalogue import no_warehouse
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

_ERROR_CHARS = 2000
_RECORDED = ("path", "source", "start_lsn", "start_segment", "timeline", "finished_at", "size",
             "pg_version")  # fmt: skip


def record_event(
    database_url: str, *, actor: str, action: str, target: str | None, details: dict[str, Any]
) -> bool:
    """Append one event to the warehouse's audit log in its own transaction; False when the
    warehouse has no audit log to take it. An unreachable warehouse raises."""
    if no_warehouse(database_url):
        return False
    with get_engine(database_url).begin() as connection:
        if not inspect(connection).has_table(AuditEvent.__tablename__):
            return False
        append_event(connection, actor=actor, action=action, target=target, details=details)
    return True


def take_recorded_base_backup(
    url: str,
    directory: Path,
    *,
    bindir: Path | None,
    database_url: str,
    actor: str,
    progress: Progress,
) -> dict[str, Any]:
    """`take_base_backup`, then `backup.base` in the audit log of the warehouse at
    `database_url` (`timbel backup base` and the `base_backup` job alike); a failure is
    recorded as `backup.base_fail` before it is raised. The base backup's metadata, with
    `audited` saying whether the event was written."""
    try:
        taken = take_base_backup(url, directory, bindir=bindir, progress=progress)
    except Exception as error:
        message = (f"{type(error).__name__}: {error}")[:_ERROR_CHARS]
        details = {"source": display_url(url), "directory": str(directory), "error": message,
                   "at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
        with contextlib.suppress(Exception):  # the base backup's own error is the one raised
            record_event(database_url, actor=actor, action=BASE_FAILED, target=None,
                         details=details)  # fmt: skip
        raise
    # The base backup is whole and verified: an audit log that cannot take the event fails the
    # command loudly (as `backup create` does), and the base backup stays.
    audited = record_event(
        database_url, actor=actor, action=BASE_TAKEN, target=taken["id"],
        details={key: taken[key] for key in _RECORDED},
    )  # fmt: skip
    return taken | {"audited": audited}
