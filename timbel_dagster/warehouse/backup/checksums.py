"""Per-table row counts and content checksums, taken at backup time in the dump's snapshot and
again after a restore, so a restore proves each table holds the rows it held.

A table's checksum is the sum, modulo 2^128, of the MD5 of each row's text: order-independent,
so it needs no sort (PostgreSQL computes it in one sequential scan in constant memory, and a
restored table whose rows sit in another physical order sums the same), while a changed,
missing or extra row changes it. It is a checksum against damage, not a signature: the dump
itself is authenticated by AES-GCM and the manifest's HMAC.

PostgreSQL: computed server-side, `md5(t::text)` per row, with the session's TimeZone, DateStyle
and float output pinned so the text of a row is the same in the backed-up and the restored
database. SQLite: the same sum over `repr()` of each row's values (the file is copied byte for
byte, so both sides read the same values with the same types).
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

_MOD = 1 << 128
_HALF = 1 << 64
# Output formats that shape a row's text: fixed for the session that checksums.
PG_SESSION = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)


def _combine(high: Any, low: Any) -> str:
    """The two signed 64-bit sums PostgreSQL returns (as numeric text), as one 128-bit hex."""
    value = ((int(high or 0) % _HALF) << 64) | (int(low or 0) % _HALF)
    return f"{value % _MOD:032x}"


def pg_table_sql(table: str) -> Any:
    """One scan of `table`: its row count and the two halves of its checksum."""
    from psycopg import sql

    # The two halves of each row's MD5 as signed bigints (hex -> bit(64) -> bigint); their
    # sums are numeric, so they never overflow. OFFSET 0 keeps the planner from folding the
    # subquery into the outer one, which would compute each row's MD5 twice (measured: twice
    # the time; turning the row into text is most of the remaining cost).
    return sql.SQL(
        "SELECT count(*), sum(('x' || left(h, 16))::bit(64)::bigint)::text, "
        "sum(('x' || right(h, 16))::bit(64)::bigint)::text "
        "FROM (SELECT md5(t::text) AS h FROM {} AS t OFFSET 0) AS rows"
    ).format(sql.Identifier("public", table))


def pg_pin_session(connection: Any) -> None:
    """Pin the output formats a row's text depends on (SET takes no snapshot, so this may run
    before a REPEATABLE READ transaction's first query)."""
    for statement in PG_SESSION:
        connection.execute(statement)


def pg_tables_seen(connection: Any, tables: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """The row count and checksum of each table, read on `connection` (in its snapshot)."""
    counts, checksums = {}, {}
    for table in tables:
        count, high, low = connection.execute(pg_table_sql(table)).fetchone()
        counts[table] = int(count)
        checksums[table] = _combine(high, low)
    return counts, checksums


def row_digest(row: tuple[Any, ...]) -> int:
    return int.from_bytes(hashlib.md5(repr(row).encode(), usedforsecurity=False).digest())


def sqlite_tables_seen(path: Path, tables: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """The row count and checksum of each table of a SQLite file."""
    counts, checksums = {}, {}
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        for table in tables:
            quoted = table.replace('"', '""')
            total, count = 0, 0
            cursor = connection.execute(f'SELECT * FROM "{quoted}"')  # nosec B608  # a quoted name
            while rows := cursor.fetchmany(10_000):
                count += len(rows)
                total += sum(row_digest(r) for r in rows)
            counts[table] = count
            checksums[table] = f"{total % _MOD:032x}"
    return counts, checksums


def differences(
    expected_counts: dict[str, int],
    expected_checksums: dict[str, str] | None,
    counts: dict[str, int],
    checksums: dict[str, str],
) -> list[str]:
    """What differs, one entry per table: its count, else its checksum (a backup made before
    checksums has none, and only its counts are compared)."""
    wrong = []
    for table, n in sorted(expected_counts.items()):
        if counts.get(table) != n:
            wrong.append(f"{table} {counts.get(table, 'missing')} rows (backup: {n})")
        elif expected_checksums is not None and checksums.get(table) != expected_checksums.get(
            table
        ):
            wrong.append(
                f"{table} checksum {checksums.get(table)} (backup: {expected_checksums.get(table)})"
            )
    return wrong
