"""PostgreSQL's write-ahead log as files: segment names, LSNs, timeline history, the archive.

Point-in-time recovery replays archived WAL segments over a base backup. Before a recovery
touches anything, `check_archive` proves that the archive holds every segment recovery will
ask for, from the base backup's start to the newest archived one, following timeline
switches the way recovery does (`recovery_target_timeline = 'latest'`); `archive_wal_file`
is an `archive_command` that never leaves a half-copied or silently replaced segment.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from timbel_dagster.warehouse.backup.crypto import BackupError

SEGMENT = re.compile(r"^[0-9A-F]{24}$")
HISTORY = re.compile(r"^([0-9A-F]{8})\.history$")
# What PostgreSQL archives: segments, timeline history files, backup history files
# (`SEGMENT.OFFSET.backup`) and a promoted standby's last partial segment.
ARCHIVABLE = re.compile(r"^[0-9A-F]{24}(\.[0-9A-F]{8}\.backup|\.partial)?$|^[0-9A-F]{8}\.history$")
_COPY_CHUNK = 1 << 20


class WalArchiveError(BackupError):
    """The WAL archive cannot carry a recovery to its target; the message names the gap."""


def parse_lsn(text: str) -> int:
    """`0/2000028` -> 33554472 (BackupError for anything else)."""
    high, _, low = text.strip().partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise BackupError(f"{text!r} is not a WAL location (like 0/2000028)") from None


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_name(timeline: int, segno: int, segment_size: int) -> str:
    """The file name of segment number `segno` on `timeline` (PostgreSQL's XLogFileName)."""
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def parse_segment_name(name: str, segment_size: int) -> tuple[int, int]:
    """(timeline, segment number) of a segment file name."""
    if not SEGMENT.match(name):
        raise BackupError(f"{name!r} is not a WAL segment name (24 hexadecimal digits)")
    per_id = 0x100000000 // segment_size
    return int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:], 16)


@dataclass(frozen=True)
class TimelineSpan:
    """The WAL a timeline contributes to the history of the newest one: [begin, end)."""

    timeline: int
    begin: int  # LSN; 0 for the first timeline
    end: int | None  # the switch LSN to the next timeline; None for the newest


def timeline_path(newest: int, history: str | None) -> list[TimelineSpan]:
    """The timelines recovery follows to reach `newest`, oldest first, from the content of
    `newest`'s history file (lines `parent-timeline<TAB>switch-LSN<TAB>reason`)."""
    spans: list[TimelineSpan] = []
    begin = 0
    for line in (history or "").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            parent, switch = int(fields[0]), parse_lsn(fields[1])
        except (ValueError, IndexError, BackupError):
            raise WalArchiveError(
                f"timeline {newest}'s history file has a bad line: {line!r}"
            ) from None
        spans.append(TimelineSpan(parent, begin, switch))
        begin = switch
    spans.append(TimelineSpan(newest, begin, None))
    return spans


@dataclass(frozen=True)
class ArchivedRun:
    """The segments recovery will read, all present: from `first` to `last` (file names)."""

    first: str
    last: str
    count: int
    timeline: int  # the newest timeline, which recovery ends on


def check_archive(
    names: Iterable[str],
    archive: str,
    *,
    start_lsn: int,
    timeline: int,
    segment_size: int,
    read_history: Callable[[int], str | None],
) -> ArchivedRun:
    """Check that the archive's files `names` hold every segment from the base backup's start
    (`start_lsn` on `timeline`) to the newest archived segment, along the timelines recovery
    follows; `read_history(timeline)` returns a history file's text.

    Raises:
        WalArchiveError: naming the first missing segment and the location recovery could
            not pass, or a base backup that is not on the newest timeline's history.
    """
    present = set(names)
    newest = max([timeline, *(int(m.group(1), 16) for n in present if (m := HISTORY.match(n)))])
    path = timeline_path(newest, read_history(newest) if newest > timeline else None)
    ours = [s for s in path if s.timeline == timeline]
    if not ours or (ours[0].end is not None and ours[0].end <= start_lsn):
        raise WalArchiveError(
            f"the base backup (timeline {timeline}, {format_lsn(start_lsn)}) is not in the "
            f"history of timeline {newest}, the newest in {archive}: recovery would follow "
            f"timeline {newest} and could not start from this base backup"
        )
    start_segment = start_lsn // segment_size
    on_path = [s for s in path if s.end is None or s.end > start_lsn]
    needed: list[str] = []
    for span in on_path:
        first = max(start_segment, span.begin // segment_size)
        if span.end is not None:
            # Recovery reads the switch segment from the new timeline, so the old one is
            # needed only up to the segment before it.
            needed += [
                segment_name(span.timeline, n, segment_size)
                for n in range(first, span.end // segment_size)
            ]
            continue
        archived = [
            parse_segment_name(n, segment_size)[1]
            for n in present
            if SEGMENT.match(n) and int(n[:8], 16) == span.timeline
        ]
        last = max([n for n in archived if n >= first], default=None)
        if last is None:
            missing = segment_name(span.timeline, first, segment_size)
            raise WalArchiveError(
                f"WAL segment {missing} is missing from {archive}: recovery cannot pass "
                f"{format_lsn(first * segment_size)} (no segment of timeline {span.timeline} "
                "from there on is archived; is archive_command working?)"
            )
        needed += [segment_name(span.timeline, n, segment_size) for n in range(first, last + 1)]
    for name in needed:
        if name not in present:
            _tli, segno = parse_segment_name(name, segment_size)
            raise WalArchiveError(
                f"WAL segment {name} is missing from {archive}: recovery cannot pass "
                f"{format_lsn(segno * segment_size)}"
            )
    return ArchivedRun(needed[0], needed[-1], len(needed), newest)


def archive_wal_file(source: Path, name: str, archive: Path) -> bool:
    """Copy WAL file `source` into `archive` as `name`: written under a temporary name,
    fsynced, then linked into place, so the archive never holds a partial file under a WAL
    name. True if copied; False if an identical file was already there (PostgreSQL retries
    a segment whose archiving it did not see finish: that must succeed).

    Raises:
        BackupError: `name` is not a WAL file name, or a different file already has it
            (never overwritten: two servers writing one archive, or a damaged copy).
    """
    if not ARCHIVABLE.match(name):
        raise BackupError(f"{name!r} is not a WAL file name PostgreSQL archives (%f)")
    destination = archive / name
    if destination.exists():
        if _same_content(source, destination):
            return False
        raise BackupError(
            f"{destination} exists and differs from {source}: not overwritten (is a second "
            "server archiving into the same directory?)"
        )
    archive.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=archive)
    try:
        with os.fdopen(descriptor, "wb") as out, source.open("rb") as data:
            while piece := data.read(_COPY_CHUNK):
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        try:
            # link(2) fails if the name exists: unlike rename, it never replaces a file that
            # appeared since the check above.
            os.link(temporary, destination)
        except FileExistsError:
            if not _same_content(source, destination):
                raise BackupError(f"{destination} appeared while archiving and differs") from None
            return False
    finally:
        Path(temporary).unlink(missing_ok=True)
    descriptor = os.open(archive, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True


def _same_content(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    with first.open("rb") as a, second.open("rb") as b:
        while True:
            left, right = a.read(_COPY_CHUNK), b.read(_COPY_CHUNK)
            if left != right:
                return False
            if not left:
                return True
