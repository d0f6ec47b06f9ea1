"""Engines for the warehouse, with one-line errors that name TIMBEL_DATABASE_URL."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from timbel_dagster.settings import display_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class WarehouseUnavailableError(RuntimeError):
    """The warehouse cannot be reached or opened; the message names TIMBEL_DATABASE_URL."""


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets the Dagster UI, the CLI and runs read while an ingestion writes; foreign keys
    # are off by default in SQLite and we rely on their cascades.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_query_only(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


@lru_cache(maxsize=16)
def get_engine(database_url: str, read_only: bool = False) -> Engine:
    """A pooled engine for `database_url`, created once per process, URL and mode.

    `read_only` engines are for reads that may run while this process holds a write
    transaction elsewhere (a source reading the warehouse during an ingestion): on SQLite
    their transactions are deferred and `query_only`, so in WAL mode they neither wait for
    nor take the write lock. On PostgreSQL both kinds are the same.
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # Take over transaction control from pysqlite and start every transaction with
        # BEGIN IMMEDIATE: two processes that read then write (a run's steps, the CLI) then
        # queue on the write lock (busy_timeout) instead of failing with "database is locked"
        # when one's snapshot went stale.
        engine = create_engine(url, connect_args={"isolation_level": None})
        event.listen(engine, "connect", _sqlite_pragmas)
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql(begin))
        if read_only:
            event.listen(engine, "connect", _sqlite_query_only)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "application_name": "timbel"},
    )


def check_connection(database_url: str) -> None:
    """Open and close one connection, turning any failure into `WarehouseUnavailableError`."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with get_engine(database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as error:
        reason = str(getattr(error, "orig", error) or error).strip().splitlines()
        raise WarehouseUnavailableError(
            f"TIMBEL_DATABASE_URL: cannot connect to {display_url(database_url)}: "
            f"{reason[0] if reason else type(error).__name__}"
        ) from None
