"""Review of the orphan rule: data whose backup has a catalogue row (good) and whose manifest
the listing does not show is deleted at once. A listing that lags behind a write (an
S3-compatible store whose LIST is eventually consistent, as AWS S3 was before December 2020
and some compatible stores still are) does not show the manifest of the backup written a
moment ago, while its data object, written minutes earlier, is listed: the `backup` job prunes
right after its backup, so the newest good backup's data would be deleted, leaving a manifest
whose data is gone. A direct read of the manifest (read-after-write) says it is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.warehouse.test_backup_retention import KEYS, _made
from timbel_dagster.warehouse.backup.retention import Policy, prune_backups
from timbel_dagster.warehouse.backup.store import DirectoryStore


class _LaggingList(DirectoryStore):
    """The same files; the listing does not show yet the objects in `unlisted`."""

    def __init__(self, directory: Path, unlisted: set[str]) -> None:
        super().__init__(directory)
        self.unlisted = unlisted

    def names(self, suffix: str) -> list[str]:
        return [n for n in super().names(suffix) if n not in self.unlisted]


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_good_backup_whose_manifest_is_not_listed_yet_keeps_its_data(
    warehouse_url: str, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path / "backups")
    [_older, newest] = _made(warehouse_url, store, tmp_path, 2)
    lagging = _LaggingList(store.directory, {f"{newest}.manifest.json"})

    prune_backups(lagging, KEYS, Policy(), database_url=warehouse_url, actor="x")

    left = sorted(p.name for p in store.directory.iterdir())
    assert f"{newest}.tbk" in left, left
