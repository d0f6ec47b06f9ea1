"""Where backups live: a small interface, and the directory that implements it.

A backup is `ID.tbk`, the encrypted warehouse, `ID.dagster.tbk`, the encrypted Dagster
database when there is one, and `ID.manifest.json`, its signed manifest. The manifest is
written last and deleted first, so a backup without one is incomplete (or being deleted) and
is not listed. s3.py implements the same methods for an S3-compatible store; `open_store`
chooses from the settings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

DATA_SUFFIX = ".tbk"
DAGSTER_SUFFIX = ".dagster.tbk"
MANIFEST_SUFFIX = ".manifest.json"
# A backup's id (logical and base alike) starts with when it started, in UTC: `ID_TIME`.
ID_TIME = "%Y%m%dT%H%M%SZ"


def new_backup_id(kind: str, now: dt.datetime) -> str:
    """`20261205T120000Z-KIND-1a2b3c`: the start time first, so ids sort by it."""
    return f"{now:{ID_TIME}}-{kind}-{secrets.token_hex(3)}"


def time_of_id(backup_id: str) -> dt.datetime:
    """When a backup started, from its id (`new_backup_id`)."""
    return dt.datetime.strptime(backup_id[:16], ID_TIME).replace(tzinfo=dt.UTC)


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


def fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
