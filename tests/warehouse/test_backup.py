"""Backups (issue 17 item 1): the chunked AES-GCM file, and create, verify and restore of a
real warehouse on SQLite and PostgreSQL (`warehouse_url` runs each test on both)."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import scratch_postgres_database
from timbel_dagster.warehouse.audit.anchors import AnchorFile
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup import sources
from timbel_dagster.warehouse.backup.crypto import (
    HEADER_SIZE,
    BackupError,
    BackupIntegrityError,
    BackupKeyError,
    BackupKeys,
    ChunkEncryptor,
    decrypt_stream,
    encrypt_stream,
)
from timbel_dagster.warehouse.backup.operations import (
    create_backup,
    list_backups,
    read_manifest,
    verify_backup,
)
from timbel_dagster.warehouse.backup.restore import TargetNotEmptyError, restore_backup
from timbel_dagster.warehouse.backup.store import DirectoryStore
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.backups import BackupRecord
from timbel_dagster.warehouse.schema.models import AuditEvent

KEYS = BackupKeys.from_bytes(bytes(range(32)))
OTHER_KEYS = BackupKeys.from_bytes(bytes(32))
NEEDLE = "needle-row-4c0ffee-plaintext"
SMALL = 4096  # chunk size in these tests: many chunks from a small warehouse


# --- the file format ----------------------------------------------------------------------
def _pieces(total: int, piece: int) -> Iterator[bytes]:
    for start in range(0, total, piece):
        yield os.urandom(min(piece, total - start))


def _records(blob: bytes) -> tuple[bytes, list[bytes]]:
    """A file's header and its records (length prefix included)."""
    header, rest, records = blob[:HEADER_SIZE], blob[HEADER_SIZE:], []
    while rest:
        (length,) = struct.unpack(">I", rest[:4])
        records.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return header, records


def _decrypt(blob: bytes, keys: BackupKeys = KEYS) -> bytes:
    return b"".join(decrypt_stream(keys, io.BytesIO(blob)))


def test_the_chunk_buffer_stays_bounded_whatever_the_stream() -> None:
    """A stream 40 times the chunk size in pieces of odd sizes (some larger than a chunk):
    the encryptor never holds a chunk's worth, and every record is one chunk at most."""
    encryptor = ChunkEncryptor(KEYS, chunk_size=1000)
    records, plaintext = [encryptor.header], []
    for piece in _pieces(40_000, 2_777):
        plaintext.append(piece)
        records += encryptor.feed(piece)
        assert encryptor.buffered < 1000
    records.append(encryptor.finish())
    assert max(len(r) for r in records[1:]) == 4 + 1000 + 16
    assert len(records) - 1 == 41  # 40 full chunks, then the final (empty) one
    assert _decrypt(b"".join(records)) == b"".join(plaintext)


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 5000])
def test_round_trip_at_the_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    assert _decrypt(b"".join(encrypt_stream(KEYS, [data], chunk_size=1000))) == data


def test_two_files_never_share_a_nonce_prefix() -> None:
    first = b"".join(encrypt_stream(KEYS, [b"same"], chunk_size=1000))
    second = b"".join(encrypt_stream(KEYS, [b"same"], chunk_size=1000))
    assert first[:HEADER_SIZE] != second[:HEADER_SIZE] and first != second


@pytest.fixture
def blob() -> bytes:
    return b"".join(encrypt_stream(KEYS, [os.urandom(10_000)], chunk_size=1000))


def test_another_key_fails_at_the_first_chunk(blob: bytes) -> None:
    with pytest.raises(BackupIntegrityError, match="fails authentication at chunk 0"):
        _decrypt(blob, OTHER_KEYS)


def test_a_file_cut_after_a_chunk_is_truncated(blob: bytes) -> None:
    header, records = _records(blob)
    with pytest.raises(BackupIntegrityError, match="truncated: it ends after chunk 4"):
        _decrypt(header + b"".join(records[:5]))


def test_a_file_cut_inside_a_chunk_is_truncated(blob: bytes) -> None:
    with pytest.raises(BackupIntegrityError, match="truncated inside chunk"):
        _decrypt(blob[: len(blob) // 2])


def test_a_flipped_byte_in_the_middle_fails_authentication(blob: bytes) -> None:
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0x01
    with pytest.raises(BackupIntegrityError, match="fails authentication at chunk 4"):
        _decrypt(bytes(damaged))


def test_a_changed_length_field_is_named(blob: bytes) -> None:
    damaged = bytearray(blob)
    damaged[HEADER_SIZE + 3] ^= 0x01  # chunk 0's length, one byte longer
    with pytest.raises(BackupIntegrityError, match="chunk 0's length field is wrong"):
        _decrypt(bytes(damaged))


def test_reordered_chunks_fail_authentication(blob: bytes) -> None:
    header, records = _records(blob)
    records[2], records[3] = records[3], records[2]
    with pytest.raises(BackupIntegrityError, match="fails authentication at chunk 2"):
        _decrypt(header + b"".join(records))


def test_the_final_chunk_moved_up_or_data_appended_is_found(blob: bytes) -> None:
    header, records = _records(blob)
    with pytest.raises(BackupIntegrityError, match="fails authentication at chunk 0"):
        _decrypt(header + records[-1] + b"".join(records[:-1]))
    with pytest.raises(BackupIntegrityError, match="data after its final chunk"):
        _decrypt(blob + records[0])


def test_a_changed_header_fails_and_a_non_backup_is_named(blob: bytes) -> None:
    damaged = bytearray(blob)
    damaged[HEADER_SIZE - 1] ^= 0x01  # the nonce prefix
    with pytest.raises(BackupIntegrityError, match="fails authentication"):
        _decrypt(bytes(damaged))
    with pytest.raises(BackupIntegrityError, match="not a Timbel backup file"):
        _decrypt(b"PGDMP" + blob[5:])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "is not set"),
        ("   ", "is not set"),
        ("not base64!", "is not base64"),
        (base64.b64encode(b"short").decode(), "holds 5 bytes, not 32"),
    ],
)
def test_a_bad_key_setting_is_named_with_how_to_make_one(value: str | None, problem: str) -> None:
    with pytest.raises(BackupKeyError, match=problem) as raised:
        BackupKeys.from_setting(value)
    assert "openssl rand -base64 32" in str(raised.value)


# --- create, verify, restore --------------------------------------------------------------
def _write_rows(url: str) -> None:
    with get_engine(url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.one", target=NEEDLE)
        append_event(connection, actor="minji.kim", action="test.two", details={"n": 2})


def _backup(url: str, tmp_path: Path) -> tuple[DirectoryStore, dict]:
    _write_rows(url)
    store = DirectoryStore(tmp_path / "backups")
    manifest = create_backup(
        url,
        store,
        KEYS,
        anchor_file=tmp_path / "anchors.jsonl",
        actor="minji.kim",
        chunk_size=SMALL,
    )
    return store, manifest


def _data(store: DirectoryStore, manifest: dict) -> Path:
    return store.directory / manifest["file"]


@pytest.fixture
def empty_target(warehouse_backend: str, tmp_path: Path) -> Iterator[str]:
    if warehouse_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored' / 'warehouse.db'}"
    else:
        with scratch_postgres_database("restore") as url:
            yield url


def _counts(url: str) -> dict[str, int]:
    if sources.backend(url) == "postgresql":
        return sources.pg_row_counts(url)
    path = sources.sqlite_path(url)
    return sources.sqlite_seen(path)["tables"] if path.exists() else {}


def test_create_verify_restore_round_trip(
    warehouse_url: str, empty_target: str, tmp_path: Path
) -> None:
    store, manifest = _backup(warehouse_url, tmp_path)
    assert manifest["tables"]["audit_events"] == 2
    assert manifest["schema_revision"] and manifest["size"] == _data(store, manifest).stat().st_size

    # The head the backup saw is anchored outside the warehouse, and the backup is audited.
    head = manifest["audit_head"]
    recorded = AnchorFile(tmp_path / "anchors.jsonl").newest()
    assert recorded is not None and recorded.pinned == (head["id"], head["hash"])
    with get_engine(warehouse_url).connect() as connection:
        last = connection.execute(
            select(AuditEvent.action, AuditEvent.target).order_by(AuditEvent.id.desc()).limit(1)
        ).one()
        catalogued = connection.execute(select(BackupRecord.__table__)).one()
    assert tuple(last) == ("backup.create", manifest["id"])
    assert (catalogued.id, catalogued.sha256, catalogued.size, catalogued.tables) == (
        manifest["id"],
        manifest["sha256"],
        manifest["size"],
        manifest["tables"],
    )
    assert catalogued.audit_head_hash == head["hash"]

    assert [b["id"] for b in list_backups(store, KEYS)] == [manifest["id"]]
    assert verify_backup(store, KEYS, manifest["id"])["verified_bytes"] == manifest["size"]

    restored = restore_backup(store, KEYS, manifest["id"], empty_target)
    assert restored["tables"] == manifest["tables"] == _counts(empty_target)
    with get_engine(empty_target).connect() as connection:
        targets = connection.execute(select(AuditEvent.target).order_by(AuditEvent.id)).scalars()
        assert NEEDLE in list(targets)
    get_engine(empty_target).dispose()


def test_the_backup_never_holds_plaintext(warehouse_url: str, tmp_path: Path) -> None:
    """Neither a known row value nor the dump's own signature (pg_dump's custom format
    compresses its data, so the row value alone would prove little there) is in any file."""
    store, manifest = _backup(warehouse_url, tmp_path)
    with store.open(manifest["file"]) as source:
        plaintext = b"".join(decrypt_stream(KEYS, source))
    signature = b"PGDMP" if manifest["source"] == "postgresql" else b"SQLite format 3\0"
    assert plaintext.startswith(signature)
    if manifest["source"] == "sqlite":
        assert NEEDLE.encode() in plaintext  # so its absence below means something
    for path in store.directory.iterdir():
        content = path.read_bytes()
        assert NEEDLE.encode() not in content and signature not in content, path.name
    assert [p.name for p in store.directory.iterdir() if p.name.startswith(".")] == []


def _tamper(path: Path, how: str) -> None:
    blob = path.read_bytes()
    if how == "truncated":
        path.write_bytes(blob[: len(blob) - 100])
    elif how == "flipped":
        damaged = bytearray(blob)
        damaged[len(blob) // 2] ^= 0x40
        path.write_bytes(bytes(damaged))
    elif how == "reordered":
        header, records = _records(blob)
        records[1], records[2] = records[2], records[1]
        path.write_bytes(header + b"".join(records))


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("truncated", "truncated"),
        ("flipped", "fails authentication at chunk"),
        ("reordered", "fails authentication at chunk 1"),
    ],
)
def test_a_damaged_backup_is_refused_and_the_target_untouched(
    warehouse_url: str, empty_target: str, tmp_path: Path, how: str, problem: str
) -> None:
    store, manifest = _backup(warehouse_url, tmp_path)
    _tamper(_data(store, manifest), how)
    with pytest.raises(BackupIntegrityError, match=problem):
        verify_backup(store, KEYS, manifest["id"])
    with pytest.raises(BackupIntegrityError, match=problem):
        restore_backup(store, KEYS, manifest["id"], empty_target)
    assert _counts(empty_target) == {}
    if empty_target.startswith("sqlite"):
        directory = sources.sqlite_path(empty_target).parent
        assert not directory.exists() or list(directory.iterdir()) == []


def test_a_wrong_key_or_an_edited_manifest_is_named(warehouse_url: str, tmp_path: Path) -> None:
    store, manifest = _backup(warehouse_url, tmp_path)
    with pytest.raises(BackupKeyError, match="made with another key"):
        verify_backup(store, OTHER_KEYS, manifest["id"])
    path = store.directory / f"{manifest['id']}.manifest.json"
    edited = json.loads(path.read_text()) | {"sha256": "0" * 64}
    path.write_text(json.dumps(edited))
    with pytest.raises(BackupIntegrityError, match="manifest is tampered with"):
        verify_backup(store, KEYS, manifest["id"])
    assert "tampered" in list_backups(store, KEYS)[0]["problem"]


def test_a_non_empty_target_needs_force(
    warehouse_url: str, empty_target: str, tmp_path: Path
) -> None:
    store, manifest = _backup(warehouse_url, tmp_path)
    restore_backup(store, KEYS, manifest["id"], empty_target)
    with get_engine(empty_target).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.after", target="later")
    get_engine(empty_target).dispose()
    before = _counts(empty_target)
    assert before["audit_events"] == manifest["tables"]["audit_events"] + 1

    with pytest.raises(TargetNotEmptyError, match=r"is not empty: .* pass --force"):
        restore_backup(store, KEYS, manifest["id"], empty_target)
    assert _counts(empty_target) == before

    restored = restore_backup(store, KEYS, manifest["id"], empty_target, force=True)
    assert restored["tables"] == manifest["tables"] == _counts(empty_target)


def test_a_backup_restores_only_into_its_own_kind(warehouse_url: str, tmp_path: Path) -> None:
    store, manifest = _backup(warehouse_url, tmp_path)
    other = (
        f"sqlite:///{tmp_path / 'x.db'}"
        if manifest["source"] == "postgresql"
        else "postgresql://postgres@127.0.0.1:5432/nowhere"
    )
    with pytest.raises(ValueError, match="restore into the same kind of database"):
        restore_backup(store, KEYS, manifest["id"], other)
    with pytest.raises(LookupError, match="no backup 20990101T000000Z-sqlite-000000"):
        read_manifest(store, KEYS, "20990101T000000Z-sqlite-000000")
    with pytest.raises(ValueError, match="is not a backup id"):
        read_manifest(store, KEYS, "../../etc/passwd")


@pytest.mark.parametrize("warehouse_backend", ["postgresql"], indirect=True)
def test_pg_restore_stopped_half_way_commits_nothing(
    warehouse_url: str, empty_target: str, tmp_path: Path
) -> None:
    """The file changed after its verification (or any error mid-stream): pg_restore is
    killed before COMMIT, and its single transaction leaves the target as it was."""
    store, manifest = _backup(warehouse_url, tmp_path)
    with store.open(manifest["file"]) as source:
        dump = b"".join(decrypt_stream(KEYS, source))

    def half_then_fail() -> Iterator[bytes]:
        yield dump[: len(dump) // 2]
        raise BackupIntegrityError("the file changed")

    with pytest.raises(BackupIntegrityError, match="the file changed"):
        sources.pg_restore(empty_target, half_then_fail(), clean=False)
    assert sources.pg_public_tables(empty_target) == []


def test_a_store_shows_nothing_of_a_write_that_failed(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "backups")

    def fails_half_way() -> Iterator[bytes]:
        yield b"x" * 10_000
        raise BackupIntegrityError("pg_dump failed")

    with pytest.raises(BackupIntegrityError):
        store.put("20261205T120000Z-sqlite-000000.tbk", fails_half_way())
    assert list(store.directory.iterdir()) == []
    assert store.names(".tbk") == []


@pytest.mark.parametrize("warehouse_backend", ["postgresql"], indirect=True)
def test_a_failed_pg_dump_leaves_no_backup(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump exiting non-zero (here: a snapshot that does not exist) is an error naming
    it, and no backup, partial file or anchor is left."""
    with pytest.raises(BackupError, match="pg_dump failed"):
        list(sources.pg_dump(warehouse_url, "00000003-00000BAD-1"))

    real = sources.pg_dump
    monkeypatch.setattr(sources, "pg_dump", lambda url, _snapshot: real(url, "00000003-00BAD-1"))
    with pytest.raises(BackupError, match="pg_dump failed"):
        _backup(warehouse_url, tmp_path)
    assert list((tmp_path / "backups").iterdir()) == []
    assert not (tmp_path / "anchors.jsonl").exists()
    # ... but the catalogue knows, for the backup_monitor rules, and so does the audit log.
    with get_engine(warehouse_url).connect() as connection:
        row = connection.execute(select(BackupRecord.__table__)).one()
        last = connection.execute(
            select(AuditEvent.action, AuditEvent.target).order_by(AuditEvent.id.desc()).limit(1)
        ).one()
    assert row.status == "failed" and "pg_dump failed (exit 1)" in row.error
    assert (row.size, row.tables) == (0, {}) and tuple(last) == ("backup.fail", row.id)
