"""Which base backups to keep, and the archived WAL only deleted ones needed (docs/operations.md,
"Point-in-time recovery").

The newest N good base backups are kept (TIMBEL_BASE_BACKUP_KEEP, 4), never fewer than one,
so the newest good one is never deleted; one whose metadata cannot be read is neither counted
nor deleted (`left`). A base backup is self-contained (the WAL of its copy was streamed into
it), so deleting an older one takes nothing a kept one needs. What a kept one needs is the
archived WAL from its own start segment on, along the timelines recovery follows: the
archive's files before the earliest start segment of the kept ones (the earliest in the WAL,
not the first to finish: base backups can overlap, and one on a timeline that branched off
earlier starts before older ones) are never read again, and are removed, on any timeline (as
`pg_archivecleanup ARCHIVE SEGMENT` does); nothing while a base backup being written started
before that. Timeline history
files stay (small, and recovery follows them). When anything makes that cut uncertain (a base
backup that cannot be read, the cut segment not in the archive), no WAL is removed.

A base backup is deleted by renaming its directory `.ID.pruning` (its `ID.json` then names a
missing directory: it is never chosen again), deleting `ID.json`, then the directory. A delete
that fails half way leaves `.ID.pruning`, a name only this creates: the next prune finishes
it. A base backup being written is `.ID.partial` without a `.json`: never listed nor touched,
unless a killed copy abandoned it (base_partial.py says how that is told): then it holds no WAL
back and is deleted the same way (its writer record first).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbel_dagster.warehouse.backup.base_partial import PARTIAL, Partial, find_partials
from timbel_dagster.warehouse.backup.base_record import record_event
from timbel_dagster.warehouse.backup.base_writer import release
from timbel_dagster.warehouse.backup.basebackup import BASE_ID, list_base_backups
from timbel_dagster.warehouse.backup.orphans import ORPHAN_AGE
from timbel_dagster.warehouse.backup.retention import PruneIncomplete
from timbel_dagster.warehouse.backup.store import fsync_directory, time_of_id
from timbel_dagster.warehouse.backup.wal import SEGMENT

# Segments, a promoted standby's last partial segment, backup history files: not history files.
_REMOVABLE = re.compile(r"^[0-9A-F]{24}(\.[0-9A-F]{8}\.backup|\.partial)?$")
_PRUNING = ".pruning"


@dataclass
class BasePlan:
    keep: list[str] = field(default_factory=list)  # newest first
    delete: list[str] = field(default_factory=list)  # oldest first
    left: dict[str, str] = field(default_factory=dict)  # unreadable: id -> problem


def plan_base_retention(bases: Iterable[dict[str, Any]], keep: int) -> BasePlan:
    """Keep the newest `keep` (at least 1) good base backups by their end; delete the other
    good ones; leave the unreadable ones."""
    if keep < 1:
        raise ValueError(f"keep must be 1 or more (the newest base backup stays), not {keep}")
    plan, good = BasePlan(), []
    for base in bases:
        if base.get("problem"):
            plan.left[base["id"]] = base["problem"]
        else:
            good.append(base)
    # Newest first by the server's clock at the end; the id breaks a tie.
    good.sort(key=lambda b: (dt.datetime.fromisoformat(b["finished_at"]), b["id"]), reverse=True)
    plan.keep = [b["id"] for b in good[:keep]]
    plan.delete = [b["id"] for b in reversed(good[keep:])]
    return plan


def wal_before(names: Iterable[str], cut: str) -> list[str]:
    """The archive's files recovery from a base backup starting in segment `cut` never reads:
    segments, partial segments and backup history files of any timeline whose position (the
    name without its timeline) is before `cut`'s; sorted."""
    if not SEGMENT.match(cut):
        raise ValueError(f"{cut!r} is not a WAL segment name")
    return sorted(n for n in names if _REMOVABLE.match(n) and n[8:24] < cut[8:24])


def prune_base_backups(
    directory: Path,
    wal_dir: Path | None,
    keep: int,
    *,
    database_url: str | None,
    actor: str,
    dry_run: bool = False,
    orphan_age: dt.timedelta = ORPHAN_AGE,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Finish the deletes an earlier prune left, delete the base backups the retention does
    not keep and the copies killed half way abandoned (`.ID.partial` older than `orphan_age`,
    TIMBEL_BACKUP_ORPHAN_HOURS, with no writer running: base_partial.py), then the archived
    WAL before the oldest kept one's start; record `backup.base_prune` in the audit log of the
    warehouse at `database_url` (when it has one). With `dry_run`, the plan only.
    PruneIncomplete when something could not be deleted."""
    now = now or dt.datetime.now(dt.UTC)
    partials = find_partials(directory, now=now, orphan_age=orphan_age)
    pending = sorted(
        p.name[1 : -len(_PRUNING)]
        for p in (directory.glob(f".*{_PRUNING}") if directory.is_dir() else [])
        if BASE_ID.match(p.name[1 : -len(_PRUNING)])
    )
    bases = [b for b in list_base_backups(directory) if b["id"] not in pending]
    plan = plan_base_retention(bases, keep)
    result: dict[str, Any] = {
        "keep": plan.keep, "delete": plan.delete, "left": plan.left, "pending": pending,
        "partials": [p.as_dict() for p in partials], "dry_run": dry_run, "deleted": [],
        "partials_deleted": [], "failed": [],
    }  # fmt: skip
    abandoned = [p for p in partials if p.abandoned]
    if not dry_run:
        for base_id in pending:
            _attempt(result, base_id, lambda b=base_id: _finish(directory, b))
        for base_id in plan.delete:
            if _attempt(result, base_id, lambda b=base_id: _delete(directory, b)):
                result["deleted"].append(base_id)
        for partial in abandoned:
            if _attempt(result, partial.id, lambda p=partial: _delete_partial(directory, p)):
                result["partials_deleted"].append(partial.id)
    by_id = {b["id"]: b for b in bases}
    # An abandoned copy holds nothing back, deleted or not (a failed delete is in `failed`):
    # nothing will ever finish it.
    writing = [p for p in partials if not p.abandoned]
    result["wal"] = _prune_wal(wal_dir, plan, by_id, writing, dry_run, result["failed"])
    if not dry_run and database_url is not None and _changed(result):
        gone = [p.as_dict() for p in abandoned if p.id in result["partials_deleted"]]
        details = {k: result[k] for k in ("deleted", "keep", "pending", "wal", "failed")}
        record_event(
            database_url, actor=actor, action="backup.base_prune", target=None,
            details=details | {"partials_deleted": [
                {k: p[k] for k in ("id", "started_at", "age_hours", "writer", "why")} for p in gone
            ]},
        )  # fmt: skip
    if result["failed"]:
        files = ", ".join(f"{f['path']} ({f['error']})" for f in result["failed"])
        raise PruneIncomplete(
            f"could not delete {files}; the next prune of the base backups deletes what is left",
            result,
        )
    return result


def partial_lines(result: dict[str, Any]) -> list[str]:
    """A prune's base backup copies as `timbel backup prune-bases` and the `base_backup` job
    say them: deleted (would delete, with a dry run) or left, each with why; one whose delete
    failed is in `failed` instead."""
    verb = "would delete" if result["dry_run"] else "deleted"
    lines = []
    for partial in result["partials"]:
        name = f".{partial['id']}.partial"
        if not partial["abandoned"]:
            lines.append(f"left base backup copy {name}, being written ({partial['why']})")
        elif result["dry_run"] or partial["id"] in result["partials_deleted"]:
            lines.append(f"{verb} abandoned base backup copy {name} ({partial['why']})")
    return lines


def _changed(result: dict[str, Any]) -> bool:
    return bool(result["deleted"] or result["pending"] or result["failed"]
                or result["partials_deleted"] or result["wal"].get("removed"))  # fmt: skip


def _attempt(result: dict[str, Any], what: str, action: Callable[[], None]) -> bool:
    try:
        action()
    except OSError as error:
        path = error.filename or what
        result["failed"].append({"path": str(path), "error": f"{type(error).__name__}: {error}"})
        return False
    return True


def _delete(directory: Path, base_id: str, source: Path | None = None) -> None:
    # The rename first: from it on, the base backup is never chosen, and its remains are
    # recognisably the retention's to delete.
    (source or directory / base_id).rename(directory / f".{base_id}{_PRUNING}")
    fsync_directory(directory)
    _finish(directory, base_id)


def _delete_partial(directory: Path, partial: Partial) -> None:
    # Its writer record first: a delete that stops after it leaves a copy judged by its age
    # alone, abandoned again; after the rename, the rest is an ordinary pending delete.
    release(partial.path)
    _delete(directory, partial.id, source=partial.path)


def _finish(directory: Path, base_id: str) -> None:
    (directory / f"{base_id}.json").unlink(missing_ok=True)
    fsync_directory(directory)
    shutil.rmtree(directory / f".{base_id}{_PRUNING}")


def _prune_wal(
    wal_dir: Path | None,
    plan: BasePlan,
    bases: dict[str, dict[str, Any]],
    writing: list[Partial],
    dry_run: bool,
    failed: list[dict[str, str]],
) -> dict[str, Any]:
    """Remove the archive's files before the earliest kept base backup's start segment; what
    was (or, dry, would be) removed, or why nothing was."""
    if wal_dir is None or not wal_dir.is_dir():
        return {"skipped": f"no WAL archive at {wal_dir} on this host"}
    if plan.left:
        base_id, problem = next(iter(plan.left.items()))
        return {"skipped": f"base backup {base_id} cannot be read ({problem}): which WAL it "
                           "needs is unknown; fix or delete it"}  # fmt: skip
    if not plan.keep:
        return {"skipped": "no good base backup: every archived segment may still be needed"}
    # The kept base backup that starts first in the WAL, not the one that finished first:
    # two base backups can overlap in time, and one taken on a timeline that branched off
    # earlier (a recovered cluster promoted) starts before older ones of the old timeline.
    oldest = min(
        (bases[i] for i in plan.keep),
        key=lambda b: (str(b.get("start_segment") or "")[8:24], b["id"]),
    )
    cut = oldest.get("start_segment") or ""
    # A base backup being written needs the WAL from its own start too, which may be before
    # the cut when it started before the kept ones (a long copy by hand beside the job).
    for partial in writing:
        start = partial.start_segment
        if start is None:
            # No backup_label yet (other tablespaces stream first): it starts after the
            # cut unless it began before the base backup the cut is of.
            began = time_of_id(partial.id)
            since = oldest.get("created_at") or oldest["finished_at"]
            if began >= dt.datetime.fromisoformat(since):
                continue
        if start is None or not SEGMENT.match(start) or start[8:24] < cut[8:24]:
            return {"skipped": f"base backup {partial.id} is being written ({partial.why}) "
                               f"and starts in {start or 'a segment not known yet'}, before "
                               f"{cut}: the WAL is pruned once it has finished, or once a "
                               f"prune finds its {PARTIAL} abandoned and deletes it"}  # fmt: skip
    names = [p.name for p in wal_dir.iterdir()]
    if cut not in names:
        return {"skipped": f"{cut or 'its start segment'}, where the oldest base backup kept "
                           f"({oldest['id']}) starts, is not in {wal_dir}: not archived yet, or "
                           "not this cluster's archive"}  # fmt: skip
    if not _same_cluster(Path(oldest["path"]), wal_dir / cut):
        # Segment names are positions, the same in every cluster's archive: a wrong
        # TIMBEL_WAL_ARCHIVE_DIR must never cost another cluster its WAL.
        return {"skipped": f"{wal_dir / cut} was not written by the cluster base backup "
                           f"{oldest['id']} copies (another system identifier): not this "
                           "cluster's archive"}  # fmt: skip
    doomed = wal_before(names, cut)
    removed = 0
    for name in [] if dry_run else doomed:
        try:
            (wal_dir / name).unlink(missing_ok=True)
            removed += 1
        except OSError as error:
            failed.append(
                {"path": str(wal_dir / name), "error": f"{type(error).__name__}: {error}"}
            )
    if removed:
        fsync_directory(wal_dir)
    return {
        "archive": str(wal_dir), "cut": cut, "oldest_kept": oldest["id"],
        "before_cut": len(doomed),
        "first": doomed[0] if doomed else None, "last": doomed[-1] if doomed else None,
        "removed": removed,
    }  # fmt: skip


def _same_cluster(base: Path, segment: Path) -> bool:
    """Whether WAL segment `segment` was written by the cluster that base backup `base` copies:
    its system identifier, the first 8 bytes of pg_control, is in the long header of every
    segment's first page at byte 24 (both in the server's byte order)."""
    try:
        with (base / "global" / "pg_control").open("rb") as control, segment.open("rb") as wal:
            ours, header = control.read(8), wal.read(32)
    except OSError:
        return False
    return len(ours) == 8 and header[24:32] == ours
