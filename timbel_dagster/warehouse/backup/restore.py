"""Restore a backup: the warehouse into --target and, when asked, Dagster's own database into
--dagster-target; each target must be empty unless forced, every file is authenticated before
any target is touched, and each restored table's row count and checksum is compared with the
backup's."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from timbel_dagster.settings import display_url, normalise_database_url
from timbel_dagster.warehouse.backup import sources
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupIntegrityError, BackupKeys
from timbel_dagster.warehouse.backup.operations import (
    Progress,
    authenticated_plaintext,
    new_tally,
    quiet,
    read_manifest,
    seen_differences,
    verify_backup,
)
from timbel_dagster.warehouse.backup.store import BackupStore


class TargetNotEmptyError(BackupError):
    """The restore target holds tables and --force was not given."""


def _url(raw: str, option: str) -> str:
    try:
        return normalise_database_url(raw)
    except ValueError as error:
        raise BackupError(f"{option}: {error}") from None


def restore_backup(
    store: BackupStore,
    keys: BackupKeys,
    backup_id: str,
    target_url: str,
    *,
    force: bool = False,
    progress: Progress = quiet,
    dagster_target: str | None = None,
) -> dict[str, Any]:
    """Restore a backup into `target_url` (and its Dagster database into `dagster_target`),
    which must be empty unless `force`.

    All files are authenticated first; then PostgreSQL gets each through `pg_restore
    --single-transaction` (an error rolls it back), SQLite as a new file renamed over the
    target only once it is complete and its tables match. The tables' row counts and
    checksums are compared with the manifest's (BackupIntegrityError naming the tables).
    """
    target = _url(target_url, "--target")
    manifest = read_manifest(store, keys, backup_id)
    kind = sources.backend(target)
    if kind != manifest["source"]:
        raise BackupError(
            f"backup {backup_id} is of a {manifest['source']} warehouse; --target is {kind} "
            "(restore into the same kind of database)"
        )
    jobs = [(manifest, target)]
    if dagster_target is not None:
        if not manifest.get("dagster"):
            raise BackupError(
                f"--dagster-target: backup {backup_id} holds no Dagster database (Dagster's "
                "storage was not PostgreSQL when it was made)"
            )
        second = _url(dagster_target, "--dagster-target")
        if sources.backend(second) != "postgresql":
            raise BackupError("--dagster-target: Dagster's database restores into PostgreSQL")
        if display_url(second) == display_url(target):
            raise BackupError("--dagster-target must be another database than --target")
        jobs.append((manifest["dagster"], second))
    # Every target is checked, then every file authenticated, before anything is written.
    for _part, url in jobs:
        _refuse_non_empty(url, force)
    progress(f"verifying backup {backup_id}")
    verify_backup(store, keys, backup_id, progress)
    results = []
    for part, url in jobs:
        shown = display_url(url)
        if sources.backend(url) == "postgresql":
            progress(f"restoring {part['database']} into {shown} with pg_restore")
            plaintext = authenticated_plaintext(
                store, keys, backup_id, part, new_tally(progress, "restored")
            )
            sources.pg_restore(url, plaintext, clean=bool(sources.pg_public_tables(url)))
            progress(f"checking the row counts and checksums of {shown}")
            counts, sums = sources.pg_tables_seen(url, part.get("checksums"))
            seen_differences(part, {"tables": counts, "checksums": sums}, shown)
        else:
            path = sources.sqlite_path(url)
            progress(f"restoring into {path}")
            counts = _restore_sqlite(store, keys, backup_id, part, path, progress)
        results.append(
            {"target": shown, "tables": counts, "rows": sum(counts.values()),
             "checksums": part.get("checksums") is not None}
        )  # fmt: skip
    restored = {"id": backup_id, **results[0]}
    restored["dagster"] = results[1] if len(results) > 1 else None
    restored["dagster_in_backup"] = bool(manifest.get("dagster"))
    return restored


def _refuse_non_empty(url: str, force: bool) -> None:
    shown = display_url(url)
    if sources.backend(url) == "postgresql":
        tables, where = sources.pg_public_tables(url), " in schema public"
    else:
        tables, where = sources.sqlite_tables(sources.sqlite_path(url)), ""
    if tables and not force:
        listed = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
        raise TargetNotEmptyError(
            f"{shown} is not empty: {len(tables)} tables{where} ({listed}); "
            "pass --force to restore over it"
        )


def _restore_sqlite(
    store: BackupStore,
    keys: BackupKeys,
    backup_id: str,
    part: dict[str, Any],
    path: Path,
    progress: Progress,
) -> dict[str, int]:
    """Decrypt into a temporary file beside the target, check it, then rename it over the
    target: until the rename the target is as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".restore", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as out:
            tally = new_tally(progress, "restored")
            for piece in authenticated_plaintext(store, keys, backup_id, part, tally):
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        try:
            seen = sources.sqlite_seen(temporary)
        except sqlite3.DatabaseError as error:
            raise BackupIntegrityError(
                f"the restored file is not a SQLite database: {error}"
            ) from None
        seen_differences(part, seen, str(path))
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
    return seen["tables"]
