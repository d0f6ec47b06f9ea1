"""The databases a backup reads and a restore writes: connections, tables, row counts and the
client programs (pg_dump, pg_restore), kept apart from the file format and the store."""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from timbel_dagster.child_env import child_environment
from timbel_dagster.settings import display_url, normalise_database_url
from timbel_dagster.warehouse.backup import checksums
from timbel_dagster.warehouse.backup.crypto import BackupError

# What pg_dump and pg_restore may see of our environment: where programs are, the locale and
# libpq's own PG* variables (sslmode, service files); the password is passed as PGPASSWORD so
# it never shows in the process list.
_PG_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
PIPE_CHUNK = 1 << 20
DUMP_COMPRESSION = 1


def backend(url: str) -> str:
    """`postgresql` or `sqlite` for a warehouse URL (BackupError for anything else)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(normalise_database_url(url)).get_backend_name()
    except ValueError as error:
        raise BackupError(f"--target: {error}") from None


def sqlite_path(url: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{display_url(url)} names no SQLite file")
    return Path(database)


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URL without the password, and the child environment holding it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(normalise_database_url(url)).set(drivername="postgresql")
    password = parsed.password
    conninfo = parsed.set(password=None).render_as_string(hide_password=False)
    extra = {"PGPASSWORD": str(password)} if password is not None else {}
    return conninfo, child_environment(_PG_VARIABLES, prefixes=("PG",), extra=extra)


def _pg_connect(url: str) -> Any:
    import psycopg

    conninfo, environment = libpq(url)
    password = environment.get("PGPASSWORD")
    try:
        return psycopg.connect(conninfo, password=password, connect_timeout=10)
    except psycopg.OperationalError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise BackupError(f"cannot connect to {display_url(url)}: {first}") from None


def _pg_tables(connection: Any) -> list[str]:
    rows = connection.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def _pg_counts(connection: Any, tables: list[str]) -> dict[str, int]:
    from psycopg import sql

    return {
        t: connection.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", t))
        ).fetchone()[0]
        for t in tables
    }


def _head(rows: list[Any]) -> dict[str, Any] | None:
    return {"id": int(rows[0][0]), "hash": str(rows[0][1])} if rows else None


def _revision(rows: list[Any]) -> str | None:
    return str(rows[0][0]) if rows else None


@contextmanager
def pg_snapshot(url: str) -> Iterator[tuple[str, Future[dict[str, Any]]]]:
    """A REPEATABLE READ transaction held open: its exported snapshot id (for `pg_dump
    --snapshot`) and what it sees, all from that one snapshot: every table of schema public's
    row count and checksum (checksums.py), the audit log's head and the schema revision.

    The tables are scanned on this connection in a thread while the caller runs pg_dump, so
    the checksums cost no time of their own when the server has a core to spare; the future
    is ready once they are done. The transaction ends when the block does.
    """
    import psycopg

    with closing(_pg_connect(url)) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        checksums.pg_pin_session(connection)
        # The first statement that reads takes the transaction's snapshot; exporting it lets
        # pg_dump read exactly what the counts below read.
        snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        tables = _pg_tables(connection)
        head, revision = _head_and_revision(connection, tables)

        def scan() -> dict[str, Any]:
            counts, sums = checksums.pg_tables_seen(connection, tables)
            return {"tables": counts, "checksums": sums, "audit_head": head,
                    "schema_revision": revision}  # fmt: skip

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-checksums") as pool:
            seen = pool.submit(scan)
            try:
                yield snapshot, seen
            except BaseException:
                connection.cancel()  # stop the scan: the backup is abandoned
                wait([seen])
                raise
            finally:
                wait([seen])
                connection.rollback()


def pg_dump(url: str, snapshot: str) -> Iterator[bytes]:
    """`pg_dump --format=custom` of the database in `snapshot`, read from its pipe a chunk at
    a time; BackupError (after the last chunk) when pg_dump fails."""
    conninfo, environment = libpq(url)
    # zlib level 1, not pg_dump's default 6: measured on the benchmark's warehouse, the dump
    # takes 2.5x less time for a file 7 % larger (compression is most of pg_dump's work).
    command = ["pg_dump", "--format=custom", f"--compress={DUMP_COMPRESSION}",
               f"--snapshot={snapshot}", "--dbname", conninfo]  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(  # nosec B603  # a fixed program, no shell
                command, stdout=subprocess.PIPE, stderr=errors, env=environment
            )
        except FileNotFoundError:
            raise BackupError("pg_dump is not installed (PostgreSQL's client tools)") from None
        try:
            assert process.stdout is not None
            while piece := process.stdout.read(PIPE_CHUNK):
                yield piece
        finally:
            if process.poll() is None and process.stdout is not None:
                process.stdout.close()
            code = process.wait()
        if code != 0:
            raise BackupError(f"pg_dump failed (exit {code}): {_last_line(errors)}")


def pg_restore(url: str, plaintext: Iterator[bytes], clean: bool) -> None:
    """Feed a custom-format dump to `pg_restore --single-transaction`: on any error (of
    pg_restore, or of `plaintext` raising) nothing of it is committed."""
    conninfo, environment = libpq(url)
    command = [
        "pg_restore",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        *(["--clean", "--if-exists"] if clean else []),
        "--dbname",
        conninfo,
    ]
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(  # nosec B603  # a fixed program, no shell
                command, stdin=subprocess.PIPE, stderr=errors, stdout=subprocess.DEVNULL,
                env=environment,
            )  # fmt: skip
        except FileNotFoundError:
            raise BackupError("pg_restore is not installed (PostgreSQL's client tools)") from None
        assert process.stdin is not None
        try:
            for piece in plaintext:
                process.stdin.write(piece)
            process.stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped early: its exit code and stderr say why
        except BaseException:
            # The file failed half way: kill pg_restore before it reaches COMMIT; the server
            # rolls its transaction back when the connection drops.
            process.kill()
            process.wait()
            raise
        code = process.wait()
        if code != 0:
            raise BackupError(
                f"pg_restore failed (exit {code}), nothing was restored: {_last_line(errors)}"
            )


def _last_line(errors: BinaryIO) -> str:
    errors.seek(0)
    lines = [line for line in errors.read().decode(errors="replace").splitlines() if line]
    return lines[-1] if lines else "no message"


def pg_public_tables(url: str) -> list[str]:
    with closing(_pg_connect(url)) as connection:
        return _pg_tables(connection)


def pg_row_counts(url: str) -> dict[str, int]:
    with closing(_pg_connect(url)) as connection:
        return _pg_counts(connection, _pg_tables(connection))


def pg_tables_seen(
    url: str, expected: dict[str, str] | None = None, workers: int = 2
) -> tuple[dict[str, int], dict[str, str]]:
    """Every table of schema public's row count and checksum (after a restore), each by the
    method of its `expected` checksum, scanned on `workers` connections at once, largest
    tables first: the check runs after the restore with nothing beside it."""
    with closing(_pg_connect(url)) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
            "ORDER BY pg_total_relation_size(c.oid) DESC, c.relname"
        ).fetchall()]  # fmt: skip
        methods = checksums.pg_methods(connection, tables)
    for table, value in (expected or {}).items():
        methods[table] = checksums.method_of(value)
    queue = list(tables)
    lock = threading.Lock()

    def work() -> tuple[dict[str, int], dict[str, str]]:
        counts, sums = {}, {}
        with closing(_pg_connect(url)) as connection:
            connection.autocommit = True
            checksums.pg_pin_session(connection)
            while True:
                with lock:
                    if not queue:
                        return counts, sums
                    table = queue.pop(0)
                found = checksums.pg_tables_seen(connection, [table], methods)
                counts |= found[0]
                sums |= found[1]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = [f.result() for f in [pool.submit(work) for _ in range(max(1, workers))]]
    counts = {t: c for found, _ in results for t, c in found.items()}
    sums = {t: s for _, found in results for t, s in found.items()}
    return dict(sorted(counts.items())), dict(sorted(sums.items()))


def pg_version() -> str:
    try:
        done = subprocess.run(  # nosec B603 B607  # a fixed program, no shell
            ["pg_dump", "--version"], capture_output=True, text=True, check=False, timeout=30
        )
    except FileNotFoundError:
        raise BackupError("pg_dump is not installed (PostgreSQL's client tools)") from None
    return done.stdout.strip()


def sqlite_tables(path: Path) -> list[str]:
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    return [r[0] for r in rows]


def _head_and_revision(connection: Any, tables: Any) -> tuple[Any, Any]:
    """The audit log's head and the schema revision, each None where its table is absent;
    `connection` is psycopg's or sqlite3's (the same execute/fetchall)."""
    head = (
        _head(connection.execute(
            "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1"
        ).fetchall())
        if "audit_events" in tables else None
    )  # fmt: skip
    revision = (
        _revision(connection.execute("SELECT version_num FROM alembic_version").fetchall())
        if "alembic_version" in tables else None
    )  # fmt: skip
    return head, revision


def sqlite_seen(path: Path) -> dict[str, Any]:
    """The row counts, checksums, audit head and schema revision of a SQLite file."""
    tables = sqlite_tables(path)
    counts, sums = checksums.sqlite_tables_seen(path, tables)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        head, revision = _head_and_revision(connection, tables)
    return {"tables": counts, "checksums": sums, "audit_head": head, "schema_revision": revision}


def sqlite_online_copy(source: Path, copy: Path) -> None:
    """A consistent copy of a live SQLite database through SQLite's online backup API."""
    if not source.is_file():
        raise BackupError(f"the SQLite warehouse {source} does not exist")
    with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(copy)) as out:
        live.backup(out)
        # One file holds the whole copy: no -wal beside it to forget.
        out.execute("PRAGMA journal_mode=DELETE")


def read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while piece := source.read(PIPE_CHUNK):
            yield piece
