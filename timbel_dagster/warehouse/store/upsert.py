"""The one bulk-upsert helper every ingestion writes through.

`INSERT ... ON CONFLICT (natural key) DO UPDATE SET ... WHERE (columns) IS DISTINCT FROM
(excluded)`, sent as one multi-row statement per batch. Rows whose values did not change are
neither rewritten nor returned, so re-ingesting the same data writes nothing and `updated_at`
keeps telling when a row last really changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

# PostgreSQL's wire protocol allows 65,535 bind parameters per statement and SQLite (3.32+)
# 32,766; batches are sized to stay under the smaller of the two.
_MAX_PARAMETERS = 32_000
_COPY_BATCH = 50_000
_NEVER_COMPARED = frozenset({"id", "created_at", "updated_at"})


@dataclass(frozen=True)
class UpsertResult:
    """What one upsert did: rows offered, and rows inserted or changed (the rest were equal)."""

    table: str
    offered: int
    written: int

    @property
    def unchanged(self) -> int:
        return self.offered - self.written

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(self.table, self.offered + other.offered, self.written + other.written)


def _dialect_insert(connection: Connection) -> Any:
    name = connection.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - settings only accept the two
        raise ValueError(f"the warehouse does not support the {name!r} dialect")
    return insert


def _check_rows(table: Table, rows: Sequence[Mapping[str, Any]], key: Sequence[str]) -> list[str]:
    columns = list(rows[0])
    unknown = [c for c in columns if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name}: unknown column(s) {', '.join(unknown)}")
    missing_key = [k for k in key if k not in columns]
    if missing_key:
        raise ValueError(f"{table.name}: rows lack natural-key column(s) {', '.join(missing_key)}")
    expected = set(columns)
    for index, row in enumerate(rows):
        if set(row) != expected:
            difference = sorted(expected.symmetric_difference(row))
            raise ValueError(
                f"{table.name}: row {index} has different columns from row 0: {difference}"
            )
    return columns


def _conflict_statement(
    connection: Connection, table: Table, insert: Any, key: Sequence[str], compared: Sequence[str]
) -> Any:
    """Add ON CONFLICT ... DO UPDATE ... WHERE IS DISTINCT FROM ... RETURNING to `insert`."""
    from sqlalchemy import or_

    if compared:
        changes = {c: insert.excluded[c] for c in compared}
        if "updated_at" in table.c:
            changes["updated_at"] = dt.datetime.now(dt.UTC)
        insert = insert.on_conflict_do_update(
            index_elements=list(key),
            set_=changes,
            where=or_(*(table.c[c].is_distinct_from(insert.excluded[c]) for c in compared)),
        )
    else:
        insert = insert.on_conflict_do_nothing(index_elements=list(key))
    return insert.returning(table.c[key[0]])


def _upsert_values(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    key: Sequence[str],
    compared: Sequence[str],
    size: int,
) -> int:
    """Portable path: executemany through SQLAlchemy's "insertmanyvalues", which sends each
    batch as one multi-row VALUES statement compiled once."""
    statement = _conflict_statement(
        connection, table, _dialect_insert(connection)(table), key, compared
    )
    written = 0
    for start in range(0, len(rows), size):
        written += len(connection.execute(statement, rows[start : start + size]).all())
    return written


def _upsert_copy(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    key: Sequence[str],
    compared: Sequence[str],
) -> int:
    """PostgreSQL path: COPY each batch into a temporary table, then one INSERT ... SELECT.

    Building a huge VALUES statement costs more in the driver than the server spends on the
    rows; COPY streams them instead, and the upsert itself stays one set-based statement.
    """
    from sqlalchemy import column, select, text
    from sqlalchemy import table as table_clause
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    staging = f"_timbel_upsert_{table.name}"
    quoted = ", ".join(f'"{c}"' for c in columns)
    processors = [table.c[c].type.bind_processor(connection.dialect) for c in columns]
    # Table and column names come from our own SQLAlchemy metadata, never from input.
    create = (
        f'CREATE TEMPORARY TABLE "{staging}" ON COMMIT DROP AS '
        f'SELECT {quoted} FROM "{table.name}" WITH NO DATA'  # nosec B608
    )
    connection.execute(text(f'DROP TABLE IF EXISTS "{staging}"'))
    connection.execute(text(create))
    source = table_clause(staging, *(column(c) for c in columns))
    statement = _conflict_statement(
        connection,
        table,
        pg_insert(table).from_select(list(columns), select(*source.c)),
        key,
        compared,
    )
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    written = 0
    try:
        for start in range(0, len(rows), _COPY_BATCH):
            connection.execute(text(f'TRUNCATE "{staging}"'))
            with cursor.copy(f'COPY "{staging}" ({quoted}) FROM STDIN') as copy:
                for row in rows[start : start + _COPY_BATCH]:
                    copy.write_row(
                        [
                            process(row[c]) if process else row[c]
                            for c, process in zip(columns, processors, strict=True)
                        ]
                    )
            written += len(connection.execute(statement).all())
    finally:
        cursor.close()
    connection.execute(text(f'DROP TABLE IF EXISTS "{staging}"'))
    return written


def bulk_upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    *,
    batch_size: int | None = None,
) -> UpsertResult:
    """Insert new rows and update changed ones, keyed on the table's natural key.

    Runs inside the caller's transaction: the caller commits the whole batch or nothing. When
    several rows share a natural key the last one wins, as if they had been sent in order.

    Args:
        connection: an open connection inside a transaction.
        table: the target table; it must have a unique constraint on `key`.
        rows: dicts with the same columns each, including every `key` column.
        key: the natural-key columns (the ON CONFLICT target).
        batch_size: rows per statement on the VALUES path; by default as many as the
            parameter limit allows.

    Returns:
        How many rows were offered and how many were inserted or changed.
    """
    if not rows:
        return UpsertResult(table.name, 0, 0)
    columns = _check_rows(table, rows, key)
    compared = [c for c in columns if c not in key and c not in _NEVER_COMPARED]
    unique = list({tuple(row[k] for k in key): dict(row) for row in rows}.values())
    if connection.dialect.name == "postgresql" and batch_size is None:
        written = _upsert_copy(connection, table, unique, columns, key, compared)
    else:
        size = batch_size or max(1, _MAX_PARAMETERS // (len(columns) + 1))
        written = _upsert_values(connection, table, unique, key, compared, size)
    return UpsertResult(table.name, len(rows), written)
