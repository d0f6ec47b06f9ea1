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
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbel_dagster.settings import display_url
from timbel_dagster.warehouse.audit.anchors import AnchorFile
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup import catalogue, sources
from timbel_dagster.warehouse.backup.checksums import differences
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
from timbel_dagster.warehouse.backup.store import (
    BACKUP_ID,
    DAGSTER_SUFFIX,
    DATA_SUFFIX,
    MANIFEST_SUFFIX,
    BackupStore,
    new_backup_id,
)
from timbel_dagster.warehouse.engine import get_engine

Progress = Callable[[str], None]
_MIB = 1 << 20
_PROGRESS_EVERY = 64 * _MIB


def quiet(_line: str) -> None:
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


@dataclass(frozen=True)
class _Dumped:
    """One database's encrypted dump in the store, and what its snapshot saw."""

    database: str
    tool: str
    seen: dict[str, Any]
    file: str
    sha256: str
    size: int

    def part(self) -> dict[str, Any]:
        """Its entry in the manifest."""
        return {
            "database": self.database,
            "tool": self.tool,
            "tables": self.seen["tables"],
            "checksums": self.seen["checksums"],
            "rows": sum(self.seen["tables"].values()),
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
        }


def _dump(
    url: str,
    store: BackupStore,
    keys: BackupKeys,
    name: str,
    progress: Progress,
    chunk_size: int,
) -> _Dumped:
    """Dump one database, encrypted as it streams, into `name` in the store."""
    kind = sources.backend(url)
    tally = _Tally(progress, "encrypted")
    if kind == "postgresql":
        tool = sources.pg_version()
        progress(f"dumping {display_url(url)} with pg_dump")
        with sources.pg_snapshot(url) as (snapshot, scan):
            dump = sources.pg_dump(url, snapshot)
            store.put(name, tally.count(encrypt_stream(keys, dump, chunk_size)))
            seen = scan.result()
        return _Dumped(_database_name(url), tool, seen, name, tally.sha256.hexdigest(), tally.size)
    tool = f"sqlite3 online backup (SQLite {sqlite3.sqlite_version})"
    path = sources.sqlite_path(url)
    progress(f"copying {path} with SQLite's online backup")
    # The plaintext copy lives only in a private temporary directory (0700), removed
    # whatever happens.
    workspace = Path(tempfile.mkdtemp(prefix="timbel-backup-"))
    try:
        copy = workspace / "warehouse.db"
        sources.sqlite_online_copy(path, copy)
        seen = sources.sqlite_seen(copy)
        plaintext = sources.read_file(copy)
        store.put(name, tally.count(encrypt_stream(keys, plaintext, chunk_size)))
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return _Dumped(path.name, tool, seen, name, tally.sha256.hexdigest(), tally.size)


def record_preflight_failure(database_url: str, actor: str, error: BaseException) -> bool:
    """A `failed` catalogue row for a backup that could not start (no key, a bad store or
    dagster.yaml), so the `backup_monitor` rules see a scheduled backup that never ran."""
    kind = sources.backend(database_url)
    now = dt.datetime.now(dt.UTC)
    return catalogue.record_failed(
        database_url, new_backup_id(kind, now), created_at=now, source=kind,
        location="(not started)", actor=actor, error=error,
    )  # fmt: skip


def create_backup(
    database_url: str,
    store: BackupStore,
    keys: BackupKeys,
    *,
    anchor_file: Path,
    actor: str,
    progress: Progress = quiet,
    chunk_size: int = CHUNK_SIZE,
    dagster_url: str | None = None,
) -> dict[str, Any]:
    """Back the warehouse (and, given `dagster_url`, Dagster's own PostgreSQL database) up into
    `store`; the signed manifest.

    The backup appears under its name only once complete (the data first, then the manifest
    that lists it); its audit head is appended to `anchor_file`, and a `backup.create` event
    to the audit log. A backup that fails, its manifest's write included, leaves no file (or,
    when a delete fails too, files the next prune deletes) and, in a warehouse that has the
    catalogue's status (0025), a `failed` row with its error (the `backup_monitor` rules).
    """
    kind = sources.backend(database_url)
    if dagster_url is not None and sources.backend(dagster_url) != "postgresql":
        raise BackupError("Dagster's database is backed up only when it is PostgreSQL")
    now = dt.datetime.now(dt.UTC)
    backup_id = new_backup_id(kind, now)
    data_name = backup_id + DATA_SUFFIX
    manifest_name = backup_id + MANIFEST_SUFFIX
    written: list[str] = []
    try:
        written.append(data_name)
        warehouse = _dump(database_url, store, keys, data_name, progress, chunk_size)
        dagster = None
        if dagster_url is not None:
            written.append(backup_id + DAGSTER_SUFFIX)
            dagster = _dump(dagster_url, store, keys, written[-1], progress, chunk_size)
        seen = warehouse.seen
        manifest = sign_manifest(
            keys,
            {
                "format": FORMAT_VERSION,
                "id": backup_id,
                "created_at": now.isoformat(),
                "source": kind,
                "schema_revision": seen["schema_revision"],
                "audit_head": seen["audit_head"],
                **warehouse.part(),
                "chunk_size": chunk_size,
                "encryption": "AES-256-GCM, chunked (docs/operations.md, Backups)",
                "dagster": dagster.part() if dagster else None,
            },
        )
        _check_still_there(store, written)
        # Removed first should its put fail: a put that reported an error may have landed.
        written.insert(0, manifest_name)
        store.put(manifest_name, [json.dumps(manifest, indent=2).encode()])
    except Exception as error:
        # Nothing is listed without a manifest; the files are removed all the same. A delete
        # that fails stops the rest (a manifest that stays keeps the data it lists), and what
        # stays is the next prune's: the failed row says the backup ended (orphans.py).
        for name in written:
            try:
                store.delete(name)
            except Exception:  # the backup's own error is the one raised
                break
        catalogue.record_failed(
            database_url, backup_id, created_at=now, source=kind,
            location=store.where(data_name), actor=actor, error=error,
        )  # fmt: skip
        raise
    head = seen["audit_head"]
    if head is not None:
        AnchorFile(anchor_file).append((head["id"], head["hash"]), by=f"backup {backup_id}")
    if seen["schema_revision"] is not None:  # a Timbel warehouse: it has the audit log
        with get_engine(database_url).begin() as connection:
            catalogue.record_good(connection, manifest, store.where(data_name), actor)
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
                    "dagster": dagster.database if dagster else None,
                },
            )
    return manifest


def _check_still_there(store: BackupStore, names: list[str]) -> None:
    """BackupError when a file of this backup is gone before its manifest is written: a prune
    deletes data without a manifest once its backup started TIMBEL_BACKUP_ORPHAN_HOURS ago,
    so a backup that ran longer fails here instead of signing a manifest for nothing."""
    for name in names:
        try:
            with store.open(name):
                pass
        except FileNotFoundError:
            raise BackupError(
                f"{store.where(name)} is gone from the store before the backup's manifest was "
                "written: a prune deleted it as an orphan (did the backup run longer than "
                "TIMBEL_BACKUP_ORPHAN_HOURS?)"
            ) from None


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
    dagster = body.get("dagster")
    if (
        body.get("id") != backup_id
        or body.get("file") != backup_id + DATA_SUFFIX
        or (dagster and dagster.get("file") != backup_id + DAGSTER_SUFFIX)
    ):
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


def parts(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The databases a backup holds, by role: `warehouse` (its fields are the manifest's own)
    and, when it was backed up, `dagster`."""
    found = {"warehouse": manifest}
    if manifest.get("dagster"):
        found["dagster"] = manifest["dagster"]
    return found


def authenticated_plaintext(
    store: BackupStore, keys: BackupKeys, backup_id: str, part: dict[str, Any], tally: _Tally
) -> Iterator[bytes]:
    """The plaintext of one of a backup's files, every chunk authenticated; the file's SHA-256
    and size are checked against the manifest at the end (BackupIntegrityError)."""
    what = f"backup {backup_id}" + ("" if part["file"].endswith(f"{backup_id}{DATA_SUFFIX}")
                                    else f" ({part['database']}, Dagster's database)")  # fmt: skip
    try:
        with store.open(part["file"]) as raw:
            counted = _CountingReader(raw, tally)
            yield from decrypt_stream(keys, counted, what)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise BackupIntegrityError(
            f"{what}'s file {store.where(part['file'])} is missing"
        ) from None
    if tally.size != part["size"]:
        raise BackupIntegrityError(
            f"{what} is {tally.size} bytes, its manifest says {part['size']}"
        )
    if tally.sha256.hexdigest() != part["sha256"]:
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
    store: BackupStore, keys: BackupKeys, backup_id: str, progress: Progress = quiet
) -> dict[str, Any]:
    """Authenticate every chunk of every file of the backup and check their checksums and
    sizes; the plaintext is dropped chunk by chunk, written nowhere. The manifest and what
    was read."""
    manifest = read_manifest(store, keys, backup_id)
    verified = plaintext = 0
    for part in parts(manifest).values():
        tally = _Tally(progress, "verified")
        for piece in authenticated_plaintext(store, keys, backup_id, part, tally):
            plaintext += len(piece)
        verified += tally.size
    return manifest | {"verified_bytes": verified, "plaintext_bytes": plaintext}


def new_tally(progress: Progress, verb: str) -> _Tally:
    return _Tally(progress, verb)


def seen_differences(part: dict[str, Any], seen: dict[str, Any], shown: str) -> None:
    """BackupIntegrityError naming every table whose row count or checksum differs from the
    backup's."""
    wrong = differences(part["tables"], part.get("checksums"), seen["tables"], seen["checksums"])
    if wrong:
        raise BackupIntegrityError(
            f"restored {shown}, but its tables differ from the backup's: " + ", ".join(wrong)
        )
