"""Review of the base retention's WAL cut: it must never remove a segment that a kept base
backup (or one being written) starts at or after. The cut was the start of the base backup
that *finished* first among those kept; the WAL a kept base backup needs begins at its own
start, and the start order is not the end order: two base backups that overlap in time (the
weekly job and a `timbel backup base` by hand), or a base backup on a timeline that branched
off earlier (a point-in-time recovery promoted and made the primary)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.warehouse.test_base_retention import START, _base, _segment, _wal_file
from timbel_dagster.warehouse.backup.base_retention import prune_base_backups
from timbel_dagster.warehouse.backup.base_writer import claim, release


def _archive(tmp_path: Path, names: list[str]) -> Path:
    wal = tmp_path / "wal"
    wal.mkdir()
    for name in names:
        _wal_file(wal / name)
    return wal


def _set(directory: Path, base_id: str, **fields: object) -> None:
    meta = directory / f"{base_id}.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | fields))


def test_overlapping_base_backups_keep_the_wal_of_the_one_that_started_first(
    tmp_path: Path,
) -> None:
    """`slow` starts in segment 2 and finishes after `quick`, which starts in segment 4:
    both are kept, and recovery from `slow` reads segments 2 and 3."""
    directory = tmp_path / "bases"
    slow = _base(directory, 0, 2)
    quick = _base(directory, 1, 4)
    _set(directory, slow, finished_at=(START + dt.timedelta(weeks=2)).isoformat())
    archive = _archive(tmp_path, [_segment(n) for n in range(1, 7)])

    done = prune_base_backups(directory, archive, 2, database_url=None, actor="x")

    assert sorted(done["keep"]) == sorted([slow, quick])
    left = sorted(p.name for p in archive.iterdir())
    assert _segment(2) in left and _segment(3) in left, (done["wal"], left)


def test_a_base_backup_on_a_timeline_that_branched_earlier_keeps_its_wal(
    tmp_path: Path,
) -> None:
    """`old` was taken on timeline 1 starting in segment 8. The cluster was then recovered to
    a moment in segment 4 and promoted (timeline 2 branches at segment 4) and `new` taken on
    timeline 2, starting in segment 5. Both are kept; recovery from `new` (the only one on
    the newest timeline) reads timeline 2's segments 5 on."""
    directory = tmp_path / "bases"
    old = _base(directory, 0, 8)
    new = _base(directory, 1, 5)
    _set(directory, new, timeline=2, start_segment=_segment(5, timeline=2))
    archive = _archive(
        tmp_path,
        [
            *(_segment(n) for n in range(1, 10)),
            *(_segment(n, timeline=2) for n in range(4, 10)),
            "00000002.history",
        ],
    )

    done = prune_base_backups(directory, archive, 2, database_url=None, actor="x")

    assert sorted(done["keep"]) == sorted([old, new])
    left = sorted(p.name for p in archive.iterdir())
    needed = [_segment(n, timeline=2) for n in (5, 6, 7)]
    assert all(name in left for name in needed), (done["wal"], left)


def test_a_base_backup_being_written_keeps_the_wal_from_its_start(tmp_path: Path) -> None:
    """A `timbel backup base` by hand started in segment 3 and is still copying (its
    backup_label, the first file pg_basebackup writes, says so) while the weekly job's base
    backup, started later in segment 8, finished and pruned with keep 1. Once the copy by hand
    finishes it is the newest base backup, and recovery from it reads segments 3 on."""
    directory = tmp_path / "bases"
    for week in range(4):
        _base(directory, week, 2 * week + 2)
    writing = directory / f".{START - dt.timedelta(days=1):%Y%m%dT%H%M%SZ}-base-abcdef.partial"
    writing.mkdir()
    claim(writing)  # this process copies it: weeks old, it is still being written
    (writing / "backup_label").write_text(
        f"START WAL LOCATION: 0/3000028 (file {_segment(3)})\n"
        "CHECKPOINT LOCATION: 0/3000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n"
        "START TIME: 2026-10-31 03:17:00 UTC\nLABEL: timbel\nSTART TIMELINE: 1\n"
    )
    archive = _archive(tmp_path, [_segment(n) for n in range(1, 10)])

    prune_base_backups(directory, archive, 1, database_url=None, actor="x")

    left = sorted(p.name for p in archive.iterdir())
    assert all(_segment(n) in left for n in range(3, 8)), left


def test_a_base_backup_being_written_without_its_label_yet_holds_the_wal_if_it_began_first(
    tmp_path: Path,
) -> None:
    """pg_basebackup receives the main data directory (backup_label first) after the other
    tablespaces: a copy by hand that began before the kept base backups may have no label
    yet, and its start is then unknown but early. One that began after them starts later."""
    directory = tmp_path / "bases"
    for week in range(4):
        _base(directory, week, 2 * week + 2)
    early = directory / f".{START - dt.timedelta(days=1):%Y%m%dT%H%M%SZ}-base-abcdef.partial"
    early.mkdir()
    claim(early)  # still being written (else, weeks old, it would be abandoned)
    archive = _archive(tmp_path, [_segment(n) for n in range(1, 10)])
    held = prune_base_backups(directory, archive, 1, database_url=None, actor="x")
    assert "is being written" in held["wal"]["skipped"]
    assert len(list(archive.iterdir())) == 9
    release(early)
    early.rmdir()
    late = directory / f".{START + dt.timedelta(weeks=4):%Y%m%dT%H%M%SZ}-base-abcdef.partial"
    late.mkdir()
    claim(late)
    done = prune_base_backups(directory, archive, 1, database_url=None, actor="x")
    assert done["wal"]["removed"] == 7 and late.is_dir()
