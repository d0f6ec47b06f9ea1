"""Which backups to keep: grandfather-father-son (7 daily, 4 weekly, 12 monthly by default).

Over the good backups only, newest first, in UTC:
- daily: the newest backup of each of the last N days that have a good backup;
- weekly: the newest of each of the last N ISO weeks (Monday to Sunday) that have one;
- monthly: the newest of each of the last N calendar months that have one;
- and always the newest good backup, whatever the counts (even all 0).
A backup kept by several rules is kept once. "The last N days that have one", not the last N
calendar days: when backups stop, the retention does not eat the ones that are left (as
restic's and borg's `--keep-daily` do). A failed backup, or one whose manifest fails its check,
is never good: it neither fills a period nor is deleted here.

`plan_retention` is the pure selection; `prune_backups` applies it to a store, and deletes
the data files no manifest lists any more (`find_orphans`: left by a prune or a backup that
failed half way), never those of a backup still being written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup import catalogue
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupKeys
from timbel_dagster.warehouse.backup.operations import BACKUP_ID, list_backups
from timbel_dagster.warehouse.backup.store import (
    DAGSTER_SUFFIX,
    DATA_SUFFIX,
    MANIFEST_SUFFIX,
    BackupStore,
)
from timbel_dagster.warehouse.engine import get_engine

# Data without a manifest and without a catalogue row is deleted once its backup started this
# long ago (find_orphans); a backup still running is younger.
ORPHAN_AGE = dt.timedelta(hours=48)


@dataclass(frozen=True)
class Policy:
    daily: int = 7
    weekly: int = 4
    monthly: int = 12

    def __post_init__(self) -> None:
        for name in ("daily", "weekly", "monthly"):
            if getattr(self, name) < 0:
                raise ValueError(f"keep {name} must be 0 or more, not {getattr(self, name)}")


@dataclass(frozen=True)
class Candidate:
    id: str
    created_at: dt.datetime
    good: bool


@dataclass
class Plan:
    keep: dict[str, list[str]] = field(default_factory=dict)  # id -> why (e.g. "daily 2026-12-05")
    delete: list[str] = field(default_factory=list)  # oldest first
    not_good: list[str] = field(default_factory=list)  # neither kept as good nor deleted


_PERIODS: tuple[tuple[str, Callable[[dt.datetime], str]], ...] = (
    ("daily", lambda at: f"{at:%Y-%m-%d}"),
    ("weekly", lambda at: "{}-W{:02d}".format(*at.isocalendar()[:2])),
    ("monthly", lambda at: f"{at:%Y-%m}"),
)


def plan_retention(candidates: Iterable[Candidate], policy: Policy) -> Plan:
    """Which good backups the policy keeps and which it deletes (see the module docstring)."""
    plan = Plan()
    good = []
    for c in candidates:
        if c.good:
            good.append(c)
        else:
            plan.not_good.append(c.id)
    # Newest first; the id breaks a tie in time so the choice never depends on input order.
    good.sort(key=lambda c: (c.created_at.astimezone(dt.UTC), c.id), reverse=True)
    if good:
        plan.keep[good[0].id] = ["newest"]
    for name, period_of in _PERIODS:
        limit, seen = getattr(policy, name), set()
        for c in good:
            period = period_of(c.created_at.astimezone(dt.UTC))
            if period in seen:
                continue
            if len(seen) == limit:
                break
            seen.add(period)
            plan.keep.setdefault(c.id, []).append(f"{name} {period}")
    plan.delete = [c.id for c in reversed(good) if c.id not in plan.keep]
    return plan


class PruneIncomplete(BackupError):
    """Some files could not be deleted; everything else was done and recorded. `result` is
    what `prune_backups` would have returned, with `failed` naming each file and its error."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Orphan:
    """Data in the store without a manifest: no listing shows it, so only this finds it."""

    id: str
    files: tuple[str, ...]
    why: str
    delete: bool  # False: it may belong to a backup still being written

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "files": list(self.files), "why": self.why, "delete": self.delete}


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
        why, delete = _judge(statuses.get(backup_id), now - _time_of_id(backup_id), orphan_age)
        found.append(Orphan(backup_id, tuple(sorted(names)), why, delete))
    return found


def _judge(status: str | None, age: dt.timedelta, orphan_age: dt.timedelta) -> tuple[str, bool]:
    """Why an orphan is one, and whether it may be deleted (find_orphans' rule)."""
    if status == catalogue.PRUNING:
        return "an earlier prune deleted its manifest, not this (catalogue: pruning)", True
    if status is not None:
        return f"no manifest, and the catalogue says the backup ended ({status})", True
    if age >= orphan_age:
        return (
            f"no manifest and no catalogue row, started {_span(age)} ago: a backup killed "
            "before its manifest"
        ), True
    return (
        f"no manifest yet, started {_span(age)} ago: a backup may still be writing it; "
        f"deleted once {_span(orphan_age)} old"
    ), False


def prune_backups(
    store: BackupStore,
    keys: BackupKeys,
    policy: Policy,
    *,
    database_url: str | None,
    actor: str,
    dry_run: bool = False,
    orphan_age: dt.timedelta = ORPHAN_AGE,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Apply the policy to the backups in `store`: delete the others (each backup's manifest
    first, so it stops being listed before its files go) and the orphans `find_orphans` says
    may go, mark their catalogue rows and record `backup.prune` in the audit log. With
    `dry_run`, only the plan (the catalogue is read, nothing is written).

    Nothing is leaked when a delete fails: the backups to delete are marked `pruning` in the
    catalogue before the store is touched, a failure stops only that backup's deletes (never
    its data before its manifest), the others go on, and the next prune finds the data left
    without a manifest and deletes it. Then PruneIncomplete names what is left.
    """
    now = now or dt.datetime.now(dt.UTC)
    # The catalogue before the store (find_orphans says why).
    statuses = catalogue.read_statuses(database_url) if database_url is not None else None
    known = statuses or {}
    recorded = database_url if statuses is not None else None  # where the catalogue is
    listed = list_backups(store, keys)
    orphans = find_orphans(store, known, now=now, orphan_age=orphan_age)
    candidates = [
        Candidate(
            b["id"],
            dt.datetime.fromisoformat(b["created_at"])
            if b.get("created_at")
            else _time_of_id(b["id"]),
            good=b.get("problem") is None,
        )
        for b in listed
    ]
    plan = plan_retention(candidates, policy)
    result: dict[str, Any] = {
        "keep": plan.keep, "delete": plan.delete, "not_good": plan.not_good,
        "orphans": [o.as_dict() for o in orphans], "dry_run": dry_run,
        "deleted": [], "orphans_deleted": [], "failed": [],
    }  # fmt: skip
    doomed = [o for o in orphans if o.delete]
    in_store = {b["id"] for b in listed} | {o.id for o in orphans}
    # A prune whose deletes all worked but whose record was lost left rows `pruning` with
    # nothing in the store; kept backups left `pruning` were never touched (their manifest is
    # there) and are good again.
    finished = [i for i, s in known.items() if s == catalogue.PRUNING and i not in in_store]
    revived = [i for i in plan.keep if known.get(i) == catalogue.PRUNING]
    if dry_run or not (plan.delete or doomed or finished or revived):
        return result
    if recorded is not None:
        with get_engine(recorded).begin() as connection:
            catalogue.mark_pruning(connection, plan.delete + [o.id for o in doomed])
            catalogue.mark_kept(connection, revived)
    try:
        for backup_id in plan.delete:
            names = [backup_id + s for s in (MANIFEST_SUFFIX, DATA_SUFFIX, DAGSTER_SUFFIX)]
            if _delete_in_order(store, backup_id, names, result["failed"]):
                result["deleted"].append(backup_id)
        for orphan in doomed:
            if _delete_in_order(store, orphan.id, list(orphan.files), result["failed"]):
                result["orphans_deleted"].append(orphan.id)
    finally:
        # Also when something raised half way: what is gone is recorded, and only that.
        if recorded is not None:
            _record_pruned(recorded, actor, result, plan, finished)
    if result["failed"]:
        raise PruneIncomplete(
            _incomplete(result["failed"], recorded is not None, orphan_age), result
        )
    return result


def _delete_in_order(
    store: BackupStore, backup_id: str, names: list[str], failed: list[dict[str, str]]
) -> bool:
    """Delete `names` in order, stopping at the first that fails (a manifest whose delete
    failed keeps its data: what is listed stays whole); whether all went."""
    for name in names:
        try:
            store.delete(name)
        except Exception as error:  # any store's error: the rest goes on, the next prune retries
            failed.append(
                {"id": backup_id, "file": name, "error": f"{type(error).__name__}: {error}"}
            )
            return False
    return True


def _incomplete(failed: list[dict[str, str]], remembered: bool, orphan_age: dt.timedelta) -> str:
    files = ", ".join(f"{f['file']} ({f['error']})" for f in failed)
    later = (
        "the catalogue keeps their backups `pruning` and the next prune deletes what is left"
        if remembered
        else f"the next prune deletes what is left once it is {_span(orphan_age)} old "
        "(no catalogue remembers it)"
    )
    return f"could not delete {files}; {later}"


def _record_pruned(
    database_url: str, actor: str, result: dict[str, Any], plan: Plan, finished: list[str]
) -> None:
    # The store, the truth about which backups exist, is pruned first.
    gone = result["deleted"] + result["orphans_deleted"] + finished
    if not gone and not result["failed"]:
        return
    with get_engine(database_url).begin() as connection:
        catalogue.mark_pruned(connection, gone, dt.datetime.now(dt.UTC))
        append_event(
            connection, actor=actor, action="backup.prune", target=None,
            details={"deleted": result["deleted"], "kept": sorted(plan.keep),
                     "orphans_deleted": result["orphans_deleted"], "failed": result["failed"]},
        )  # fmt: skip


def _span(span: dt.timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 60 else f"{minutes / 60:.0f} h"


def _time_of_id(backup_id: str) -> dt.datetime:
    return dt.datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
