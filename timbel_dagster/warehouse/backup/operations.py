"""Create, list, verify and restore backups of the warehouse.

A backup is a consistent copy of the warehouse (PostgreSQL: `pg_dump --format=custom` in a
snapshot exported from the transaction that counted the rows; SQLite: the online backup
API), encrypted as it streams (crypto.py) into a store (store.py), with a signed manifest
beside it: what was backed up, each table's row count, the audit log's head, the ciphertext's
SHA-256 and size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbel_dagster.settings import display_url, normalise_database_url
from timbel_dagster.warehouse.audit.anchors import AnchorFile
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup import sources
from timbel_dagster.warehouse.backup.crypto import (
    CHUNK_SIZE,
    FORMAT_VERSION,
    BackupError,
    BackupIntegrityError,
    BackupKeys,
    check_manifest,
    decrypt_stream,
    encrypt_stream,
    sign_manifest,
)
from timbel_dagster.warehouse.backup.store import DATA_SUFFIX, MANIFEST_SUFFIX, BackupStore
from timbel_dagster.warehouse.engine import get_engine

BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z-(postgresql|sqlite)-[0-9a-f]{6}$")
Progress = Callable[[str], None]
_MIB = 1 << 20
_PROGRESS_EVERY = 64 * _MIB


def _quiet(_line: str) -> None:
    pass


@dataclass
class _Tally:
    """The SHA-256 and size of the ciphertext as it passes, with progress every 64 MiB."""

    progress: Progress
    verb: str
    sha256: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    _next: int = _PROGRESS_EVERY

    def count(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self.sha256.update(piece)
            self.size += len(piece)
            if self.size >= self._next:
                self.progress(f"{self.verb} {self.size // _MIB} MiB")
                self._next += _PROGRESS_EVERY
            yield piece


def check_id(backup_id: str) -> str:
    if not BACKUP_ID.match(backup_id):
        raise BackupError(
            f"{backup_id!r} is not a backup id (like 20261205T120000Z-postgresql-1a2b3c; "
            "`timbel backup list` shows them)"
        )
    return backup_id


def create_backup(
    database_url: str,
    store: BackupStore,
    keys: BackupKeys,
    *,
    anchor_file: Path,
    actor: str,
    progress: Progress = _quiet,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, Any]:
    """Back the warehouse up into `store`; the signed manifest.

    The backup appears under its name only once complete (the data first, then the manifest
    that lists it); its audit head is appended to `anchor_file`, and a `backup.create` event
    to the audit log.
    """
    kind = sources.backend(database_url)
    now = dt.datetime.now(dt.UTC)
    backup_id = f"{now:%Y%m%dT%H%M%SZ}-{kind}-{secrets.token_hex(3)}"
    data_name = backup_id + DATA_SUFFIX
    tally = _Tally(progress, "encrypted")
    if kind == "postgresql":
        tool = sources.pg_version()
        progress(f"dumping {display_url(database_url)} with pg_dump")
        with sources.pg_snapshot(database_url) as (snapshot, seen):
            dump = sources.pg_dump(database_url, snapshot)
            store.put(data_name, tally.count(encrypt_stream(keys, dump, chunk_size)))
        database = _database_name(database_url)
    else:
        tool = f"sqlite3 online backup (SQLite {sqlite3.sqlite_version})"
        path = sources.sqlite_path(database_url)
        progress(f"copying {path} with SQLite's online backup")
        # The plaintext copy lives only in a private temporary directory (0700), removed
        # whatever happens.
        workspace = Path(tempfile.mkdtemp(prefix="timbel-backup-"))
        try:
            copy = workspace / "warehouse.db"
            sources.sqlite_online_copy(path, copy)
            seen = sources.sqlite_seen(copy)
            plaintext = sources.read_file(copy)
            store.put(data_name, tally.count(encrypt_stream(keys, plaintext, chunk_size)))
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        database = path.name
    manifest = sign_manifest(
        keys,
        {
            "format": FORMAT_VERSION,
            "id": backup_id,
            "created_at": now.isoformat(),
            "source": kind,
            "database": database,
            "tool": tool,
            "schema_revision": seen["schema_revision"],
            "tables": seen["tables"],
            "rows": sum(seen["tables"].values()),
            "audit_head": seen["audit_head"],
            "file": data_name,
            "sha256": tally.sha256.hexdigest(),
            "size": tally.size,
            "chunk_size": chunk_size,
            "encryption": "AES-256-GCM, chunked (docs/operations.md, Backups)",
        },
    )
    store.put(backup_id + MANIFEST_SUFFIX, [json.dumps(manifest, indent=2).encode()])
    head = seen["audit_head"]
    if head is not None:
        AnchorFile(anchor_file).append((head["id"], head["hash"]), by=f"backup {backup_id}")
    if seen["schema_revision"] is not None:  # a Timbel warehouse: it has the audit log
        with get_engine(database_url).begin() as connection:
            _catalogue(connection, manifest, store.where(data_name), actor)
            append_event(
                connection,
                actor=actor,
                action="backup.create",
                target=backup_id,
                details={
                    "where": store.where(data_name),
                    "sha256": manifest["sha256"],
                    "size": manifest["size"],
                    "rows": manifest["rows"],
                    "audit_head": head,
                },
            )
    return manifest


def _catalogue(connection: Any, manifest: dict[str, Any], location: str, actor: str) -> None:
    """The backup's row in the catalogue table (from revision 0024; an older schema has
    none, and its backup is only in the store)."""
    from sqlalchemy import insert, inspect

    # lazy: the schema loads SQLAlchemy's ORM; the code location loads without it
    from timbel_dagster.warehouse.schema.backups import BackupRecord

    if not inspect(connection).has_table(BackupRecord.__tablename__):
        return
    head = manifest["audit_head"] or {}
    connection.execute(
        insert(BackupRecord).values(
            id=manifest["id"],
            created_at=dt.datetime.fromisoformat(manifest["created_at"]),
            created_by=actor,
            source=manifest["source"],
            location=location,
            size=manifest["size"],
            sha256=manifest["sha256"],
            rows=manifest["rows"],
            tables=manifest["tables"],
            schema_revision=manifest["schema_revision"],
            audit_head_id=head.get("id"),
            audit_head_hash=head.get("hash"),
        )
    )


def _database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)


def read_manifest(store: BackupStore, keys: BackupKeys, backup_id: str) -> dict[str, Any]:
    """The checked manifest of a backup.

    Raises:
        LookupError: no such backup.
        BackupKeyError: made with another key.
        BackupIntegrityError: the manifest is damaged or tampered with.
    """
    name = check_id(backup_id) + MANIFEST_SUFFIX
    what = f"backup {backup_id}"
    try:
        with store.open(name) as source:
            raw = source.read(1 << 20)
    except FileNotFoundError:
        raise LookupError(
            f"no backup {backup_id} in {store.where('')} (`timbel backup list` shows them)"
        ) from None
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
    except ValueError as error:
        raise BackupIntegrityError(f"{what}'s manifest is not JSON ({error})") from None
    body = check_manifest(keys, manifest, what)
    if body.get("id") != backup_id or body.get("file") != backup_id + DATA_SUFFIX:
        raise BackupIntegrityError(f"{what}'s manifest belongs to another backup")
    return body


def list_backups(store: BackupStore, keys: BackupKeys) -> list[dict[str, Any]]:
    """Every backup with a manifest, oldest first; a manifest that fails its check is listed
    with `problem` saying why (nothing is decrypted: `verify_backup` reads the data)."""
    found = []
    for name in store.names(MANIFEST_SUFFIX):
        backup_id = name.removesuffix(MANIFEST_SUFFIX)
        if not BACKUP_ID.match(backup_id):
            continue
        try:
            manifest = read_manifest(store, keys, backup_id)
        except (BackupError, LookupError) as error:
            found.append({"id": backup_id, "problem": str(error)})
            continue
        found.append(manifest | {"problem": None})
    return found


def _authenticated_plaintext(
    store: BackupStore, keys: BackupKeys, manifest: dict[str, Any], tally: _Tally
) -> Iterator[bytes]:
    """The plaintext of a backup's file, every chunk authenticated; the file's SHA-256 and
    size are checked against the manifest at the end (BackupIntegrityError)."""
    what = f"backup {manifest['id']}"
    try:
        with store.open(manifest["file"]) as raw:
            counted = _CountingReader(raw, tally)
            yield from decrypt_stream(keys, counted, what)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise BackupIntegrityError(
            f"{what}'s file {store.where(manifest['file'])} is missing"
        ) from None
    if tally.size != manifest["size"]:
        raise BackupIntegrityError(
            f"{what} is {tally.size} bytes, its manifest says {manifest['size']}"
        )
    if tally.sha256.hexdigest() != manifest["sha256"]:
        raise BackupIntegrityError(f"{what}'s SHA-256 does not match its manifest")


class _CountingReader:
    def __init__(self, raw: Any, tally: _Tally) -> None:
        self._raw, self._tally = raw, tally

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        for _ in self._tally.count([data] if data else []):
            pass
        return data


def verify_backup(
    store: BackupStore, keys: BackupKeys, backup_id: str, progress: Progress = _quiet
) -> dict[str, Any]:
    """Authenticate every chunk and check the checksum and size; the plaintext is dropped
    chunk by chunk, written nowhere. The manifest and what was read."""
    manifest = read_manifest(store, keys, backup_id)
    tally = _Tally(progress, "verified")
    plaintext = 0
    for piece in _authenticated_plaintext(store, keys, manifest, tally):
        plaintext += len(piece)
    return manifest | {"verified_bytes": tally.size, "plaintext_bytes": plaintext}


class TargetNotEmptyError(BackupError):
    """The restore target holds tables and --force was not given."""


def restore_backup(
    store: BackupStore,
    keys: BackupKeys,
    backup_id: str,
    target_url: str,
    *,
    force: bool = False,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Restore a backup into `target_url`, which must be empty unless `force`.

    The whole file is authenticated first; then PostgreSQL gets it through `pg_restore
    --single-transaction` (an error rolls everything back), SQLite as a new file renamed over
    the target only once it is complete and its row counts match. The row counts are
    compared with the manifest's afterwards (BackupIntegrityError naming the tables).
    """
    try:
        target = normalise_database_url(target_url)
    except ValueError as error:
        raise BackupError(f"--target: {error}") from None
    manifest = read_manifest(store, keys, backup_id)
    kind = sources.backend(target)
    if kind != manifest["source"]:
        raise BackupError(
            f"backup {backup_id} is of a {manifest['source']} warehouse; --target is {kind} "
            "(restore into the same kind of database)"
        )
    shown = display_url(target)
    if kind == "postgresql":
        existing = sources.pg_public_tables(target)
        _refuse_non_empty(shown, existing, force, "in schema public")
    else:
        path = sources.sqlite_path(target)
        _refuse_non_empty(shown, sources.sqlite_tables(path), force, "")
    # The whole file is authenticated before the target is touched.
    progress(f"verifying backup {backup_id}")
    verify_backup(store, keys, backup_id, progress)
    if kind == "postgresql":
        progress(f"restoring into {shown} with pg_restore --single-transaction")
        tally = _Tally(progress, "restored")
        sources.pg_restore(
            target, _authenticated_plaintext(store, keys, manifest, tally), clean=bool(existing)
        )
        counts = sources.pg_row_counts(target)
        _compare_counts(manifest, counts, shown)
    else:
        progress(f"restoring into {path}")
        counts = _restore_sqlite(store, keys, manifest, path, progress)
    return {"id": backup_id, "target": shown, "tables": counts, "rows": sum(counts.values())}


def _refuse_non_empty(shown: str, tables: list[str], force: bool, where: str) -> None:
    if tables and not force:
        listed = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
        raise TargetNotEmptyError(
            f"--target {shown} is not empty: {len(tables)} tables {where} ({listed}); "
            "pass --force to restore over it".replace("  ", " ")
        )


def _compare_counts(manifest: dict[str, Any], counts: dict[str, int], shown: str) -> None:
    expected = manifest["tables"]
    wrong = [
        f"{t} {counts.get(t, 'missing')} (backup: {n})"
        for t, n in sorted(expected.items())
        if counts.get(t) != n
    ]
    if wrong:
        raise BackupIntegrityError(
            f"restored {shown}, but its row counts differ from the backup's: " + ", ".join(wrong)
        )


def _restore_sqlite(
    store: BackupStore,
    keys: BackupKeys,
    manifest: dict[str, Any],
    path: Path,
    progress: Progress,
) -> dict[str, int]:
    """Decrypt into a temporary file beside the target, check it, then rename it over the
    target: until the rename the target is as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".restore", dir=path.parent)
    temporary = Path(name)
    try:
        tally = _Tally(progress, "restored")
        with os.fdopen(descriptor, "wb") as out:
            for piece in _authenticated_plaintext(store, keys, manifest, tally):
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        try:
            counts = sources.sqlite_seen(temporary)["tables"]
        except sqlite3.DatabaseError as error:
            raise BackupIntegrityError(
                f"the restored file is not a SQLite database: {error}"
            ) from None
        _compare_counts(manifest, counts, str(path))
        if path.exists():
            # Fold the target's WAL into it before replacing it, so no stale -wal file is
            # left to be replayed over the restored database.
            with closing(sqlite3.connect(path)) as old:
                old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        temporary.replace(path)
        for leftover in ("-wal", "-shm"):
            Path(f"{path}{leftover}").unlink(missing_ok=True)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return counts
