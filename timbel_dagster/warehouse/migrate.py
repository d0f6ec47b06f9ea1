"""Schema migrations (Alembic), run from code so that `timbel db upgrade` needs no alembic.ini."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from timbel_dagster.warehouse.audit.archive import AuditLogInUseError, plan_drop, seal_dropped
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.engine import check_connection, get_engine

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

    from timbel_dagster.warehouse.audit.archive import DropPlan

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def current_revision(database_url: str) -> str | None:
    """The revision the warehouse is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with get_engine(database_url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@functools.cache  # reads every migration file: 40 ms, on each API app and CLI schema check
def head_revision() -> str:
    """The newest revision this code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def _migrate(
    database_url: str,
    direction: str,
    revision: str,
    actor: str | None,
    archive_dir: Path | None = None,
) -> tuple[str | None, str | None]:
    """Run one Alembic command and, when it changed the schema, audit it in the same
    transaction. With `archive_dir` a downgrade that drops the audit tables is guarded
    (`_guard_audit_drop`); without it they are dropped with their events."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    check_connection(database_url)
    sealed: Path | None = None
    try:
        with get_engine(database_url).begin() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            guarded = archive_dir is not None and inspect(connection).has_table("audit_events")
            plan = plan_drop(connection) if guarded else None
            getattr(command, direction)(_config(connection), revision)
            after = MigrationContext.configure(connection).get_current_revision()
            if inspect(connection).has_table("audit_events"):
                if plan is not None and plan.checkpoints:
                    _refuse_checkpoint_drop(connection, revision, plan.checkpoints)
                if actor and before != after:
                    append_event(
                        connection,
                        actor=actor,
                        action=f"db.{direction}",
                        target="warehouse schema",
                        details={"from": before, "to": after},
                    )
            elif plan is not None and archive_dir is not None:
                # Raising here rolls the whole downgrade back (DDL is transactional on
                # PostgreSQL and SQLite alike).
                sealed = _guard_audit_drop(plan, revision, archive_dir, actor, before, after)
    except BaseException:
        if sealed is not None:
            sealed.unlink(missing_ok=True)
        raise
    return before, after


def _refuse_checkpoint_drop(connection: Connection, revision: str, checkpoints: int) -> None:
    from sqlalchemy import inspect

    if not inspect(connection).has_table("audit_checkpoints"):
        raise AuditLogInUseError(
            f"refusing to downgrade to {revision}: it drops audit_checkpoints, which records "
            f"the {checkpoints} audit archive(s) the audit chain is verified from"
        )


def _guard_audit_drop(
    plan: DropPlan,
    revision: str,
    archive_dir: Path,
    actor: str | None,
    before: str | None,
    after: str | None,
) -> Path:
    """Refuse to drop events no archive holds; otherwise seal what is left (and this
    downgrade's own event) into a final archive file, and return its path."""

    if plan.unarchived:
        raise AuditLogInUseError(
            f"refusing to downgrade to {revision}: the audit log holds {plan.unarchived} "
            "event(s) not archived; archive them first with "
            "`timbel audit archive --older-than 0`"
        )
    details = {"from": before, "to": after, "audit_log": "dropped"}
    return seal_dropped(plan, archive_dir, actor or "timbel", details)


def upgrade(
    database_url: str, revision: str = "head", actor: str | None = None
) -> tuple[str | None, str | None]:
    """Migrate up to `revision`; a database already there is left untouched.

    Args:
        database_url: the warehouse.
        revision: target revision.
        actor: who asked, for the audit log (None: an internal upgrade, not audited).

    Returns:
        The revision before and after.
    """
    return _migrate(database_url, "upgrade", revision, actor)


def downgrade(
    database_url: str, revision: str, actor: str | None = None, archive_dir: Path | None = None
) -> tuple[str | None, str | None]:
    """Migrate down to `revision` (`base` removes every table).

    Args:
        database_url: the warehouse.
        revision: target revision.
        actor: who asked, for the audit log.
        archive_dir: guard the audit log, as `timbel db downgrade` does: a downgrade that
            drops `audit_events` is refused (AuditLogInUseError, nothing changes) while it
            holds events no archive has, and otherwise the few events archiving leaves
            behind are sealed, with this downgrade's own event, into a final archive file
            here; one that drops `audit_checkpoints` is refused while archives exist.
            None (scratch databases, tests) drops the tables as they are.

    Returns:
        The revision before and after.
    """
    return _migrate(database_url, "downgrade", revision, actor, archive_dir)
