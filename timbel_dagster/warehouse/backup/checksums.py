"""Per-table row counts and content checksums, taken at backup time in the dump's snapshot and
again after a restore, so a restore proves each table holds the rows it held.

A table's checksum is a sum, modulo 2^128, of a 128-bit hash of each row: order-independent,
so it needs no sort (PostgreSQL computes it in one sequential scan in constant memory, and a
restored table whose rows sit in another physical order sums the same), while a changed,
missing or extra row changes it. It is a checksum against damage, not a signature: the dump
itself is authenticated by AES-GCM and the manifest's HMAC. Each value names its method:

- `hash:` (PostgreSQL 14 on): `hash_record_extended(row, 0)` and `(row, 1)`, each column hashed
  by its type's own hash function (those hash partitioning relies on) without turning the row
  into text: measured 11x cheaper than `md5:` on the benchmark's warehouse. Used for tables
  whose columns are all of the types in HASHABLE (or arrays or domains of them): types whose
  hash depends on the database (an enum hashes its OID, as do the reg* types) or that have no
  hash function (json) are left to `md5:`. The functions hash bytes in the machine's order:
  restore onto a server of the same byte order (every x86-64 and ARM64 one).
- `md5:`: the MD5 of each row's text (`md5(t::text)`), with the session's TimeZone, DateStyle,
  IntervalStyle and float and bytea output pinned so a row prints the same on both sides.
- SQLite, `md5:` too: the MD5 of `repr()` of each row's values (the file is copied byte for
  byte, so both sides read the same values with the same types).

The restore recomputes each table by the method its manifest names.
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

_MOD = 1 << 128
_HALF = 1 << 64
HASH, MD5 = "hash", "md5"
# Base types whose hash functions depend only on the value (not on OIDs or the database).
HASHABLE = (
    "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar",
    "bpchar", "bytea", "uuid", "date", "time", "timestamp", "timestamptz", "interval", "jsonb",
)  # fmt: skip
# Output formats that shape a row's text: fixed for the session that checksums.
PG_SESSION = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)


def _combine(method: str, high: Any, low: Any) -> str:
    """Two signed 64-bit sums PostgreSQL returns (as numeric text), as one 128-bit value."""
    value = ((int(high or 0) % _HALF) << 64) | (int(low or 0) % _HALF)
    return f"{method}:{value % _MOD:032x}"


def method_of(checksum: str | None) -> str:
    """The method a stored checksum names (`md5` when it names none)."""
    return HASH if checksum and checksum.startswith(f"{HASH}:") else MD5


def pg_table_sql(table: str, method: str = MD5) -> Any:
    """One scan of `table`: its row count and the two 64-bit halves of its checksum."""
    from psycopg import sql

    name = sql.Identifier("public", table)
    # `t.*`, not `t`: a bare `t` names a column `t` when the table has one (only that column
    # would be hashed); `t.*` in a function argument or cast is always the whole row.
    if method == HASH:
        return sql.SQL(
            "SELECT count(*), sum(hash_record_extended(t.*, 0))::text, "
            "sum(hash_record_extended(t.*, 1))::text FROM {} AS t"
        ).format(name)
    # The two halves of each row's MD5 as signed bigints (hex -> bit(64) -> bigint); their
    # sums are numeric, so they never overflow. OFFSET 0 keeps the planner from folding the
    # subquery into the outer one, which would compute each row's MD5 twice (measured: twice
    # the time; turning the row into text is most of the remaining cost).
    return sql.SQL(
        "SELECT count(*), sum(('x' || left(h, 16))::bit(64)::bigint)::text, "
        "sum(('x' || right(h, 16))::bit(64)::bigint)::text "
        "FROM (SELECT md5(CAST(t.* AS text)) AS h FROM {} AS t OFFSET 0) AS rows"
    ).format(name)


def pg_methods(connection: Any, tables: list[str]) -> dict[str, str]:
    """The cheapest safe method for each table (see the module docstring)."""
    version = int(connection.execute("SHOW server_version_num").fetchone()[0])
    if version < 140000 or not tables:  # hash_record_extended is PostgreSQL 14's
        return dict.fromkeys(tables, MD5)
    rows = connection.execute(
        "SELECT c.relname, bool_and(coalesce(e.typname, b.typname) = ANY(%s)) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
        "LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A' "
        "WHERE n.nspname = 'public' AND c.relname = ANY(%s) GROUP BY c.relname",
        (list(HASHABLE), tables),
    ).fetchall()
    safe = {name for name, hashable in rows if hashable}
    return {t: HASH if t in safe else MD5 for t in tables}


def pg_pin_session(connection: Any) -> None:
    """Pin the output formats a row's text depends on (SET takes no snapshot, so this may run
    before a REPEATABLE READ transaction's first query)."""
    for statement in PG_SESSION:
        connection.execute(statement)


def pg_tables_seen(
    connection: Any, tables: list[str], methods: dict[str, str] | None = None
) -> tuple[dict[str, int], dict[str, str]]:
    """The row count and checksum of each table, read on `connection` (in its snapshot), by
    the method `methods` names for it (default: the cheapest safe one)."""
    if methods is None:
        methods = pg_methods(connection, tables)
    counts, checksums = {}, {}
    for table in tables:
        method = methods.get(table, MD5)
        count, high, low = connection.execute(pg_table_sql(table, method)).fetchone()
        counts[table] = int(count)
        checksums[table] = _combine(method, high, low)
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
            checksums[table] = f"{MD5}:{total % _MOD:032x}"
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
