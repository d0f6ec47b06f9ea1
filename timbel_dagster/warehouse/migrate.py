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


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate up to `revision`; a database already there is left untouched.

    Returns:
        The revision before and after.
    """
    from alembic import command

    from timbel_dagster.warehouse.engine import check_connection, get_engine

    check_connection(database_url)
    before = current_revision(database_url)
    with get_engine(database_url).begin() as connection:
        command.upgrade(_config(connection), revision)
    return before, current_revision(database_url)


def downgrade(database_url: str, revision: str) -> tuple[str | None, str | None]:
    """Migrate down to `revision` (`base` removes every table)."""
    from alembic import command

    from timbel_dagster.warehouse.engine import check_connection, get_engine

    check_connection(database_url)
    before = current_revision(database_url)
    with get_engine(database_url).begin() as connection:
        command.downgrade(_config(connection), revision)
    return before, current_revision(database_url)
