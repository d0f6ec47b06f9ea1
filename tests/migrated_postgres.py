"""A PostgreSQL warehouse migrated once and emptied between tests (`warehouse_url`).

A full Alembic upgrade and downgrade costs about a second per test on PostgreSQL, and
TRUNCATE of all its tables half a second (each truncated table gets new files); DELETE from
every table and restarting the sequences takes a few milliseconds on the small tables tests
write. A test that changes the schema (a downgrade, say) is noticed by the schema's
fingerprint, and the schema is then rebuilt from nothing.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# Every relation, column, constraint and index of the schema, and the Alembic revision.
_FINGERPRINT = """
SELECT md5(string_agg(part, ',' ORDER BY part)) FROM (
    SELECT concat_ws(':', c.relname, c.relkind::text, a.attname,
                     format_type(a.atttypid, a.atttypmod), a.attnotnull::text) AS part
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = current_schema()
    UNION ALL
    SELECT concat_ws(':', 'constraint', conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
    UNION ALL
    SELECT concat_ws(':', 'index', indexname, indexdef)
    FROM pg_indexes WHERE schemaname = current_schema()
    UNION ALL
    SELECT concat_ws(':', 'revision', version_num) FROM alembic_version
) parts
"""

_RESTART_SEQUENCES = """
SELECT setval(s.seqrelid::regclass, s.seqstart, false)
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema()
"""


class MigratedPostgres:
    """One database kept at the newest schema; `empty()` makes it as a fresh upgrade left it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._fingerprint = ""
        self._delete = ""
        self.rebuilds = 0

    @cached_property
    def engine(self) -> Engine:
        """Its own engine: the one `get_engine` caches belongs to the code under test."""
        from sqlalchemy import create_engine

        return create_engine(self.url, pool_size=1)

    def migrate(self) -> None:
        """Upgrade to the newest schema and note what it looks like."""
        from sqlalchemy import MetaData

        from timbel_dagster.warehouse import migrate

        migrate.upgrade(self.url)
        with self.engine.connect() as connection:
            self._fingerprint = self._schema(connection) or ""
            metadata = MetaData()
            metadata.reflect(connection)
        # Children before their parents, so no foreign key is ever violated on the way.
        self._delete = "; ".join(
            f'DELETE FROM "{table.name}"'  # nosec B608: table names reflected from our schema
            for table in reversed(metadata.sorted_tables)
            if table.name != "alembic_version"
        )

    def empty(self) -> None:
        """Delete every row and restart every sequence; rebuild a schema a test changed."""
        from sqlalchemy import text

        with self.engine.connect() as connection:
            changed = self._schema(connection) != self._fingerprint
        if changed:
            self.rebuild()
            return
        with self.engine.begin() as connection:
            # A connection left inside a transaction holding rows would block the DELETE:
            # fail with the reason instead of hanging.
            connection.execute(text("SET LOCAL lock_timeout = '20s'"))
            connection.exec_driver_sql(self._delete)
            connection.execute(text(_RESTART_SEQUENCES))

    def rebuild(self) -> None:
        """Drop everything in the schema and migrate again from nothing."""
        from sqlalchemy import text

        self.rebuilds += 1
        with self.engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '20s'"))
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        self.migrate()

    @staticmethod
    def _schema(connection: Connection) -> str | None:
        """The schema's fingerprint; None when it cannot be taken (no alembic_version)."""
        from sqlalchemy import text
        from sqlalchemy.exc import ProgrammingError

        try:
            with connection.begin_nested():
                return connection.execute(text(_FINGERPRINT)).scalar_one()
        except ProgrammingError:
            return None
