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

`plan_retention` is the pure selection; `prune_backups` applies it to a store, deletes the
data files no manifest lists any more (`find_orphans`: left by a prune or a backup that failed
half way) and aborts the writes that never completed (`find_incomplete_uploads`: an S3
multipart upload or a directory's partial file of a killed process), never those of a backup
still being written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup import catalogue
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupKeys
from timbel_dagster.warehouse.backup.operations import list_backups
from timbel_dagster.warehouse.backup.orphans import (
    ORPHAN_AGE,
    LeftUpload,
    Orphan,
    find_incomplete_uploads,
    find_orphans,
    span,
)
from timbel_dagster.warehouse.backup.store import (
    DAGSTER_SUFFIX,
    DATA_SUFFIX,
    MANIFEST_SUFFIX,
    BackupStore,
    time_of_id,
)
from timbel_dagster.warehouse.engine import get_engine


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
    may go, abort the incomplete uploads `find_incomplete_uploads` says may go, mark the
    catalogue rows and record `backup.prune` in the audit log. With `dry_run`, only the plan
    (the catalogue is read, nothing is written).

    Nothing is leaked when a delete fails: the backups to delete are marked `pruning` in the
    catalogue before the store is touched, a failure stops only that backup's deletes (never
    its data before its manifest), the others go on, and the next prune finds the data left
    without a manifest and deletes it. Then PruneIncomplete names what is left. The sweep of
    incomplete uploads only warns (`prune_warnings`): an abort that fails is in
    `uploads_failed`, a listing that fails in `uploads_unlisted` (else None).
    """
    now = now or dt.datetime.now(dt.UTC)
    # The catalogue before the store (find_orphans says why).
    statuses = catalogue.read_statuses(database_url) if database_url is not None else None
    known = statuses or {}
    recorded = database_url if statuses is not None else None  # where the catalogue is
    listed = list_backups(store, keys)
    orphans = find_orphans(store, known, now=now, orphan_age=orphan_age)
    unlisted = None
    try:
        uploads = find_incomplete_uploads(store, now=now, orphan_age=orphan_age)
    except Exception as error:  # any store's error: the retention goes on, with a warning
        # Most often credentials without s3:ListBucketMultipartUploads, which the docs asked
        # for only once prunes aborted uploads: a nightly job that backed up and pruned
        # must not start failing on an upgrade for the sake of this housekeeping.
        uploads, unlisted = [], f"{store.where('')}: {_text(error)}"
    candidates = [
        Candidate(
            b["id"],
            dt.datetime.fromisoformat(b["created_at"])
            if b.get("created_at")
            else time_of_id(b["id"]),
            good=b.get("problem") is None,
        )
        for b in listed
    ]
    plan = plan_retention(candidates, policy)
    result: dict[str, Any] = {
        "keep": plan.keep, "delete": plan.delete, "not_good": plan.not_good,
        "orphans": [o.as_dict() for o in orphans], "uploads": [u.as_dict() for u in uploads],
        "uploads_unlisted": unlisted, "dry_run": dry_run, "deleted": [],
        "orphans_deleted": [], "uploads_aborted": [], "uploads_failed": [], "failed": [],
    }  # fmt: skip
    doomed = [o for o in orphans if o.delete]
    aborting = [u for u in uploads if u.abort]
    in_store = {b["id"] for b in listed} | {o.id for o in orphans}
    # A prune whose deletes all worked but whose record was lost left rows `pruning` with
    # nothing in the store; kept backups left `pruning` were never touched (their manifest is
    # there) and are good again.
    finished = [i for i, s in known.items() if s == catalogue.PRUNING and i not in in_store]
    revived = [i for i in plan.keep if known.get(i) == catalogue.PRUNING]
    if not dry_run and (plan.delete or doomed or aborting or finished or revived):
        _apply(store, result, plan, doomed, aborting, finished, revived, recorded, actor)
    if result["failed"]:
        raise PruneIncomplete(
            _incomplete(result["failed"], recorded is not None, orphan_age), result
        )
    return result


def _apply(
    store: BackupStore,
    result: dict[str, Any],
    plan: Plan,
    doomed: list[Orphan],
    aborting: list[LeftUpload],
    finished: list[str],
    revived: list[str],
    recorded: str | None,
    actor: str,
) -> None:
    """The deletes and aborts of `prune_backups`, what went into `result`."""
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
        for left in aborting:
            upload = left.upload
            try:
                store.abort_upload(upload)
            except Exception as error:  # any store's error: a warning; the next prune retries
                result["uploads_failed"].append(
                    {"file": upload.name, "upload": upload.upload_id, "error": _text(error)}
                )
            else:
                result["uploads_aborted"].append(upload.upload_id)
    finally:
        # Also when something raised half way: what is gone is recorded, and only that.
        if recorded is not None:
            _record_pruned(recorded, actor, result, plan, finished)


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _delete_in_order(
    store: BackupStore, backup_id: str, names: list[str], failed: list[dict[str, str]]
) -> bool:
    """Delete `names` in order, stopping at the first that fails (a manifest whose delete
    failed keeps its data: what is listed stays whole); whether all went."""
    for name in names:
        try:
            store.delete(name)
        except Exception as error:  # any store's error: the rest goes on, the next prune retries
            failed.append({"id": backup_id, "file": name, "error": _text(error)})
            return False
    return True


def upload_lines(result: dict[str, Any]) -> list[str]:
    """A prune's incomplete uploads as `timbel backup prune` and the `backup` job say them:
    aborted (would abort, with a dry run) or left, each with why; one whose abort failed is
    in `prune_warnings` instead."""
    aborted = set(result["uploads_aborted"])
    lines = []
    for upload in result["uploads"]:
        if not upload["abort"]:
            said = "left"
        elif result["dry_run"]:
            said = "would abort"
        elif upload["upload_id"] in aborted:
            said = "aborted"
        else:
            continue
        lines.append(
            f"{said} incomplete upload {upload['upload_id']} of {upload['name']} ({upload['why']})"
        )
    return lines


def prune_warnings(result: dict[str, Any]) -> list[str]:
    """What a prune could not do of its sweep of incomplete uploads. Warnings, not failures:
    the sweep is housekeeping that credentials from before it (without
    s3:ListBucketMultipartUploads or s3:AbortMultipartUpload) cannot do, and a nightly backup
    that backed up and pruned must not start failing, and be retried, for its sake."""
    warnings = [
        f"warning: could not abort the incomplete upload {f['upload']} of {f['file']} "
        f"({f['error']}); the next prune tries again (an S3 store's credentials need "
        "s3:AbortMultipartUpload)"
        for f in result.get("uploads_failed", [])
    ]
    if result.get("uploads_unlisted"):
        warnings.append(
            f"warning: could not list the incomplete uploads in {result['uploads_unlisted']}; "
            "none were aborted (an S3 store's credentials need s3:ListBucketMultipartUploads "
            "on the bucket)"
        )
    return warnings


def _incomplete(failed: list[dict[str, Any]], remembered: bool, orphan_age: dt.timedelta) -> str:
    files = ", ".join(f"{f['file']} ({f['error']})" for f in failed)
    later = (
        "the catalogue keeps their backups `pruning` and the next prune deletes what is left"
        if remembered
        else f"the next prune deletes what is left once it is {span(orphan_age)} old "
        "(no catalogue remembers it)"
    )
    return f"could not delete {files}; {later}"


def _record_pruned(
    database_url: str, actor: str, result: dict[str, Any], plan: Plan, finished: list[str]
) -> None:
    # The store, the truth about which backups exist, is pruned first.
    gone = result["deleted"] + result["orphans_deleted"] + finished
    if not (gone or result["uploads_aborted"] or result["uploads_failed"] or result["failed"]):
        return
    with get_engine(database_url).begin() as connection:
        catalogue.mark_pruned(connection, gone, dt.datetime.now(dt.UTC))
        append_event(
            connection, actor=actor, action="backup.prune", target=None,
            details={"deleted": result["deleted"], "kept": sorted(plan.keep),
                     "orphans_deleted": result["orphans_deleted"],
                     "uploads_aborted": result["uploads_aborted"],
                     "uploads_failed": result["uploads_failed"], "failed": result["failed"]},
        )  # fmt: skip
