"""Per-table checksums (issue 17): taken in the dump's snapshot, compared after a restore, on
PostgreSQL and SQLite (`warehouse_url` runs each test on both)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, text

from tests.conftest import scratch_postgres_database
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup import checksums, sources
from timbel_dagster.warehouse.backup.checksums import differences
from timbel_dagster.warehouse.backup.crypto import BackupIntegrityError, BackupKeys, sign_manifest
from timbel_dagster.warehouse.backup.operations import create_backup
from timbel_dagster.warehouse.backup.restore import restore_backup
from timbel_dagster.warehouse.backup.store import DirectoryStore
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

KEYS = BackupKeys.from_bytes(bytes(range(32)))


def _seen(url: str) -> dict:
    if sources.backend(url) == "postgresql":
        counts, sums = sources.pg_tables_seen(url)
        return {"tables": counts, "checksums": sums}
    return sources.sqlite_seen(sources.sqlite_path(url))


def _events(url: str, *targets: str) -> None:
    with get_engine(url).begin() as connection:
        for target in targets:
            append_event(connection, actor="minji.kim", action="test.row", target=target)


def test_a_changed_value_changes_only_its_tables_checksum(warehouse_url: str) -> None:
    _events(warehouse_url, "one", "two")
    before = _seen(warehouse_url)
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(text("UPDATE audit_events SET target = 'tw0' WHERE target = 'two'"))
    after = _seen(warehouse_url)
    assert after["tables"] == before["tables"]
    changed = [t for t in before["checksums"] if before["checksums"][t] != after["checksums"][t]]
    assert changed == ["audit_events"]
    assert differences(before["tables"], before["checksums"], after["tables"],
                       after["checksums"])[0].startswith("audit_events checksum")  # fmt: skip


def test_the_checksum_ignores_the_rows_physical_order(warehouse_url: str) -> None:
    """The same rows written in another order (another physical layout) sum the same."""
    _events(warehouse_url, "a", "b", "c")
    first = _seen(warehouse_url)["checksums"]["audit_events"]
    table = AuditEvent.__table__
    with get_engine(warehouse_url).begin() as connection:
        rows = [
            dict(r)
            for r in connection.execute(select(table).order_by(table.c.id.desc())).mappings()
        ]
        connection.execute(delete(table))
        for row in rows:  # newest first: reversed on disk
            connection.execute(insert(table).values(row))
    assert _seen(warehouse_url)["checksums"]["audit_events"] == first


@pytest.mark.parametrize("warehouse_backend", ["postgresql"], indirect=True)
def test_checksums_survive_a_restore_under_another_time_zone(
    warehouse_url: str, tmp_path: Path
) -> None:
    """The warehouse's tables are summed by their types' hash functions (`hash:`); a table
    with an enum (whose hash is its OID, new in the restored database) or a json column (no
    hash function) by the MD5 of its rows' text (`md5:`), where timestamptz prints in the
    session's time zone: the checksum session pins UTC, so a server with another TimeZone
    sums the same rows the same."""
    _events(warehouse_url, "tz")
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(text("CREATE TYPE mood AS ENUM ('ok', 'sad')"))
        connection.execute(text(
            "CREATE TABLE extra (id int PRIMARY KEY, m mood, j json, at timestamptz, f float8)"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO extra SELECT i, 'sad', '{\"a\": 1}', now(), i / 3.0 "
            "FROM generate_series(1, 50) AS i"
        ))  # fmt: skip
    store = DirectoryStore(tmp_path / "backups")
    manifest = create_backup(
        warehouse_url, store, KEYS, anchor_file=tmp_path / "a.jsonl", actor="minji.kim"
    )
    assert set(manifest["checksums"]) == set(manifest["tables"])
    assert manifest["checksums"]["extra"].startswith("md5:")
    assert manifest["checksums"]["audit_events"].startswith("hash:")
    with scratch_postgres_database("restore_tz") as target:
        database = target.rsplit("/", 1)[1]
        with get_engine(target).begin() as connection:
            connection.execute(text(f"ALTER DATABASE {database} SET TimeZone = 'Asia/Seoul'"))
        get_engine(target).dispose()
        restored = restore_backup(store, KEYS, manifest["id"], target)
        assert restored["checksums"] is True
        counts, sums = sources.pg_tables_seen(target, manifest["checksums"])
        assert sums == manifest["checksums"] and counts["extra"] == 50


def test_a_restore_whose_content_differs_is_named_by_table(
    warehouse_url: str, tmp_path: Path
) -> None:
    """Counts that match but content that does not (here: the manifest re-signed with another
    checksum, as a restore that lost a change would show) is an error naming the table."""
    _events(warehouse_url, "x")
    store = DirectoryStore(tmp_path / "backups")
    manifest = create_backup(
        warehouse_url, store, KEYS, anchor_file=tmp_path / "a.jsonl", actor="minji.kim"
    )
    body = {k: v for k, v in manifest.items() if k != "hmac"}
    method = body["checksums"]["audit_events"].split(":")[0]
    body["checksums"] = body["checksums"] | {"audit_events": f"{method}:" + "0" * 32}
    path = store.directory / f"{manifest['id']}.manifest.json"
    path.write_text(json.dumps(sign_manifest(KEYS, body)))
    if manifest["source"] == "postgresql":
        with (
            scratch_postgres_database("restore_sum") as target,
            pytest.raises(
                BackupIntegrityError, match=r"audit_events checksum (hash|md5):[0-9a-f]{32}"
            ),
        ):
            restore_backup(store, KEYS, manifest["id"], target)
    else:
        target_path = tmp_path / "restored.db"
        with pytest.raises(BackupIntegrityError, match="audit_events checksum"):
            restore_backup(store, KEYS, manifest["id"], f"sqlite:///{target_path}")
        assert not target_path.exists()  # the SQLite target is replaced only when it matches


@pytest.mark.parametrize("method", ["hash", "md5"])
def test_a_column_named_like_the_alias_does_not_narrow_the_checksum(method: str) -> None:
    """`t` in `... FROM table AS t` names a column `t` when the table has one: the checksum
    must still cover the whole row (and a quoted, capitalised table name must work)."""
    import psycopg

    with scratch_postgres_database("checksum_alias") as url:
        conninfo, _ = sources.libpq(url)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            for table, key in (('Odd "One"', 1), ('Odd "Two"', 2)):
                quoted = '"' + table.replace('"', '""') + '"'
                connection.execute(f"CREATE TABLE {quoted} (id int, t text)")  # nosec B608
                connection.execute(f"INSERT INTO {quoted} VALUES ({key}, 'same')")  # nosec B608
            tables = ['Odd "One"', 'Odd "Two"']
            counts, sums = checksums.pg_tables_seen(
                connection, tables, dict.fromkeys(tables, method)
            )
    assert counts == {'Odd "One"': 1, 'Odd "Two"': 1}
    assert sums['Odd "One"'] != sums['Odd "Two"']  # the rows differ in `id`
    assert sums['Odd "One"'].startswith(f"{method}:")
