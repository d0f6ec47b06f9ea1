"""Schema migrations (Alembic), run from code so that `timbel db upgrade` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

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

    from timbel_dagster.warehouse.engine import get_engine

    with get_engine(database_url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision this code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def _migrate(
    database_url: str, direction: str, revision: str, actor: str | None
) -> tuple[str | None, str | None]:
    """Run one Alembic command and, when it changed the schema, audit it in the same
    transaction (unless the audit table itself is gone, as after a downgrade to base)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from timbel_dagster.warehouse.audit import append_event
    from timbel_dagster.warehouse.engine import check_connection, get_engine

    check_connection(database_url)
    with get_engine(database_url).begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        getattr(command, direction)(_config(connection), revision)
        after = MigrationContext.configure(connection).get_current_revision()
        if actor and before != after and inspect(connection).has_table("audit_events"):
            append_event(
                connection,
                actor=actor,
                action=f"db.{direction}",
                target="warehouse schema",
                details={"from": before, "to": after},
            )
    return before, after


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
    database_url: str, revision: str, actor: str | None = None
) -> tuple[str | None, str | None]:
    """Migrate down to `revision` (`base` removes every table)."""
    return _migrate(database_url, "downgrade", revision, actor)
