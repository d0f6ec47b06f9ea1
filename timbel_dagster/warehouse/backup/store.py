"""Where backups live: a small interface, and the directory that implements it.

A backup is `ID.tbk`, the encrypted warehouse, `ID.dagster.tbk`, the encrypted Dagster
database when there is one, and `ID.manifest.json`, its signed manifest. The manifest is
written last and deleted first, so a backup without one is incomplete (or being deleted) and
is not listed. s3.py implements the same methods for an S3-compatible store; `open_store`
chooses from the settings.

A write that never completed (its process was killed) leaves something no listing of names
shows: an incomplete multipart upload in S3, a hidden `.NAME.XXXXXXXX.partial` file in a
directory. `incomplete_uploads` finds them and `abort_upload` removes one; a prune decides which
(orphans.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

DATA_SUFFIX = ".tbk"
DAGSTER_SUFFIX = ".dagster.tbk"
MANIFEST_SUFFIX = ".manifest.json"
# A backup's id (logical and base alike) starts with when it started, in UTC: `ID_TIME`.
ID_TIME = "%Y%m%dT%H%M%SZ"
# A logical backup's id (`new_backup_id`) and the names of its files: the one place that
# says what a backup's object looks like, so that a sweep (orphans.py) never takes anything
# else in a shared directory or bucket for one.
_ID = r"\d{8}T\d{6}Z-(?:postgresql|sqlite)-[0-9a-f]{6}"
_FILE = rf"(?P<id>{_ID})(?:\.dagster\.tbk|\.tbk|\.manifest\.json)"
# \Z, not $: `$` also matches before a final newline, and S3 allows a key `ID.tbk\n`.
BACKUP_ID = re.compile(rf"^{_ID}\Z")
BACKUP_FILE = re.compile(rf"^{_FILE}\Z")
# The temporary file of a directory store's write of a backup's file (`put`, tempfile.mkstemp):
# `.ID.tbk.k3x9q2ab.partial`. Only these names, so nothing else in the directory (a base
# backup's `.ID.partial` directory when both share one) is ever taken for one.
_PARTIAL = re.compile(rf"^\.(?P<name>{_FILE})\.[a-z0-9_]+\.partial\Z")


def new_backup_id(kind: str, now: dt.datetime) -> str:
    """`20261205T120000Z-KIND-1a2b3c`: the start time first, so ids sort by it."""
    return f"{now:{ID_TIME}}-{kind}-{secrets.token_hex(3)}"


def time_of_id(backup_id: str) -> dt.datetime:
    """When a backup started, from its id (`new_backup_id`)."""
    return dt.datetime.strptime(backup_id[:16], ID_TIME).replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class IncompleteUpload:
    """A write into the store that never completed, which no listing of names shows."""

    name: str  # the object it was writing
    upload_id: str  # the store's handle on it: S3's upload id, the directory's partial file
    started: dt.datetime  # UTC: S3's `Initiated`; in a directory, its backup id's time


class BackupStore(Protocol):
    """What backups need of a store of named objects."""

    def put(self, name: str, chunks: Iterable[bytes]) -> None:
        """Store `chunks` under `name`, visible under that name only once complete."""

    def open(self, name: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Read an object; FileNotFoundError when there is none."""

    def names(self, suffix: str) -> list[str]:
        """The complete objects whose names end with `suffix`, sorted."""

    def where(self, name: str) -> str:
        """Where an object is, for messages."""

    def delete(self, name: str) -> None:
        """Remove an object (nothing when there is none)."""

    def incomplete_uploads(self) -> list[IncompleteUpload]:
        """The writes into the store that never completed (a process killed mid-write), also
        those still running, by name."""

    def abort_upload(self, upload: IncompleteUpload) -> None:
        """Remove what an incomplete write holds (nothing when it is gone)."""


class DirectoryStore:
    """Objects as files in one directory (TIMBEL_BACKUP_DIR), mode 0600 in a 0700 directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, name: str, chunks: Iterable[bytes]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{name}.", suffix=".partial", dir=self.directory
        )
        try:
            with os.fdopen(descriptor, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).replace(self.directory / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        fsync_directory(self.directory)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        with (self.directory / name).open("rb") as source:
            yield source

    def names(self, suffix: str) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name for p in self.directory.iterdir()
            if p.name.endswith(suffix) and not p.name.startswith(".")
        )  # fmt: skip

    def where(self, name: str) -> str:
        return str(self.directory / name)

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)
        fsync_directory(self.directory)

    def incomplete_uploads(self) -> list[IncompleteUpload]:
        """The temporary files of `put`s that never renamed theirs into place; when each
        started is its backup id's time (a file's own birth time is not portable)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            matched = _PARTIAL.match(path.name)
            if matched and path.is_file() and not path.is_symlink():
                found.append(
                    IncompleteUpload(matched["name"], path.name, time_of_id(matched["id"]))
                )
        return sorted(found, key=lambda u: (u.name, u.upload_id))

    def abort_upload(self, upload: IncompleteUpload) -> None:
        if not _PARTIAL.match(upload.upload_id):
            raise ValueError(f"{upload.upload_id!r} is not a partial file of this store")
        (self.directory / upload.upload_id).unlink(missing_ok=True)
        fsync_directory(self.directory)


def fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
