"""What a prune finds in the backup store that no listing of backups shows, and whether it may
remove it: data no manifest lists (an orphan, `find_orphans`) and writes that never completed
(an S3 multipart upload or a directory's partial file of a killed process,
`find_incomplete_uploads`). A backup being written looks exactly like either, so both wait for
TIMBEL_BACKUP_ORPHAN_HOURS."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from timbel_dagster.warehouse.backup import catalogue
from timbel_dagster.warehouse.backup.store import (
    BACKUP_ID,
    DAGSTER_SUFFIX,
    DATA_SUFFIX,
    MANIFEST_SUFFIX,
    BackupStore,
    IncompleteUpload,
    time_of_id,
)

# Data without a manifest and without a catalogue row is deleted once its backup started this
# long ago (TIMBEL_BACKUP_ORPHAN_HOURS); a backup still running is younger.
ORPHAN_AGE = dt.timedelta(hours=48)


@dataclass(frozen=True)
class Orphan:
    """Data in the store without a manifest: no listing shows it, so only this finds it."""

    id: str
    files: tuple[str, ...]
    why: str
    delete: bool  # False: it may belong to a backup still being written

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "files": list(self.files), "why": self.why, "delete": self.delete}


@dataclass(frozen=True)
class LeftUpload:
    """A write into the store that never completed (its parts or partial file are paid for and
    listed by nothing), and whether a prune may abort it."""

    upload: IncompleteUpload
    why: str
    abort: bool  # False: it may be a backup still writing it

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.upload.name, "upload_id": self.upload.upload_id,
            "started": self.upload.started.isoformat(), "why": self.why, "abort": self.abort,
        }  # fmt: skip


def find_incomplete_uploads(
    store: BackupStore, *, now: dt.datetime, orphan_age: dt.timedelta
) -> list[LeftUpload]:
    """The store's incomplete writes, and whether a prune may abort them: once started
    `orphan_age` ago (TIMBEL_BACKUP_ORPHAN_HOURS; in S3 its `Initiated`), as no backup runs
    that long; a younger one may be a backup writing right now."""
    found = []
    for upload in store.incomplete_uploads():
        age = now - upload.started
        abort = age >= orphan_age
        why = (
            f"started {span(age)} ago and never completed: a write killed half way"
            if abort
            else f"started {span(age)} ago: a backup may still be writing it; aborted once "
            f"{span(orphan_age)} old"
        )
        found.append(LeftUpload(upload, why, abort))
    return found


def find_orphans(
    store: BackupStore,
    statuses: dict[str, str],
    *,
    now: dt.datetime,
    orphan_age: dt.timedelta,
) -> list[Orphan]:
    """The backups whose data files are in the store without their manifest, and whether a
    prune may delete them.

    A backup writes its data first and its manifest last, so a backup being written right now
    looks exactly like an orphan. The rule that tells them apart:
    - a catalogue row says the backup has ended: a good row is written after its manifest, a
      failed one after its files were removed (or failed to be), and `pruning` / `pruned`
      by the retention. Its data without a manifest is left over: deleted at once;
    - with no row (a backup killed before it could write one, a warehouse without the
      catalogue, or a backup still running), only once its id, the time it started, is
      older than `orphan_age` (TIMBEL_BACKUP_ORPHAN_HOURS, 48 h): no backup runs that long.

    `statuses` must be read before this lists the store: a row read first was written before
    the listing, so its backup's manifest, written before the row, is in the listing unless
    it was deleted since.
    """
    with_manifest = {n.removesuffix(MANIFEST_SUFFIX) for n in store.names(MANIFEST_SUFFIX)}
    files: dict[str, list[str]] = {}
    for name in store.names(DATA_SUFFIX):  # `ID.dagster.tbk` ends with `.tbk` too
        backup_id = name.removesuffix(
            DAGSTER_SUFFIX if name.endswith(DAGSTER_SUFFIX) else DATA_SUFFIX
        )
        if BACKUP_ID.match(backup_id) and backup_id not in with_manifest:
            files.setdefault(backup_id, []).append(name)
    found = []
    for backup_id, names in sorted(files.items()):
        there = _manifest_there(store, backup_id + MANIFEST_SUFFIX)
        if there is True:
            continue  # the listing lags behind a manifest just written: not an orphan
        if there is None:
            why, delete = "its manifest could not be read to check it is gone", False
        else:
            age = now - time_of_id(backup_id)
            why, delete = _judge(statuses.get(backup_id), age, orphan_age)
        found.append(Orphan(backup_id, tuple(sorted(names)), why, delete))
    return found


def _manifest_there(store: BackupStore, name: str) -> bool | None:
    """Whether the manifest `name` can be read, asked of the object itself: a listing may lag
    behind a write (an eventually consistent S3-compatible LIST) where a read does not. None
    when the read fails otherwise (then nothing of that backup is deleted)."""
    try:
        with store.open(name):
            return True
    except FileNotFoundError:
        return False
    except Exception:  # any store's error: unknown, so kept
        return None


def _judge(status: str | None, age: dt.timedelta, orphan_age: dt.timedelta) -> tuple[str, bool]:
    """Why an orphan is one, and whether it may be deleted (find_orphans' rule)."""
    if status == catalogue.PRUNING:
        return "an earlier prune deleted its manifest, not this (catalogue: pruning)", True
    if status is not None:
        return f"no manifest, and the catalogue says the backup ended ({status})", True
    if age >= orphan_age:
        return (
            f"no manifest and no catalogue row, started {span(age)} ago: a backup killed "
            "before its manifest"
        ), True
    return (
        f"no manifest yet, started {span(age)} ago: a backup may still be writing it; "
        f"deleted once {span(orphan_age)} old"
    ), False


def span(length: dt.timedelta) -> str:
    """`5 min`, `48 h`: for messages."""
    minutes = length.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 60 else f"{minutes / 60:.0f} h"
