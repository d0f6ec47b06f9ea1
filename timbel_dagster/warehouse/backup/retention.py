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

`plan_retention` is the pure selection; `prune_backups` applies it to a store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup import catalogue
from timbel_dagster.warehouse.backup.crypto import BackupKeys
from timbel_dagster.warehouse.backup.operations import list_backups
from timbel_dagster.warehouse.backup.store import (
    DAGSTER_SUFFIX,
    DATA_SUFFIX,
    MANIFEST_SUFFIX,
    BackupStore,
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


def prune_backups(
    store: BackupStore,
    keys: BackupKeys,
    policy: Policy,
    *,
    database_url: str | None,
    actor: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Apply the policy to the backups in `store`: delete the others (each backup's manifest
    first, so it stops being listed before its files go), mark their catalogue rows `pruned`
    and record `backup.prune` in the audit log. With `dry_run`, only the plan."""
    listed = list_backups(store, keys)
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
    result = {"keep": plan.keep, "delete": plan.delete, "not_good": plan.not_good,
              "dry_run": dry_run, "deleted": []}  # fmt: skip
    if dry_run or not plan.delete:
        return result
    try:
        for backup_id in plan.delete:
            store.delete(backup_id + MANIFEST_SUFFIX)
            for suffix in (DATA_SUFFIX, DAGSTER_SUFFIX):
                store.delete(backup_id + suffix)
            result["deleted"].append(backup_id)
    finally:
        # Also when a delete fails half way: the backups whose files are all gone are
        # recorded (only those: one whose files are still there is not called pruned).
        if database_url is not None and result["deleted"]:
            _record_pruned(database_url, actor, result["deleted"], plan)
    return result


def _record_pruned(database_url: str, actor: str, deleted: list[str], plan: Plan) -> None:
    # The store, the truth about which backups exist, is pruned first; a warehouse without
    # the catalogue's status (before 0025) keeps no trace of it.
    with get_engine(database_url).begin() as connection:
        if catalogue.has_status(connection):
            catalogue.mark_pruned(connection, deleted, dt.datetime.now(dt.UTC))
            append_event(
                connection, actor=actor, action="backup.prune", target=None,
                details={"deleted": deleted, "kept": sorted(plan.keep)},
            )  # fmt: skip


def _time_of_id(backup_id: str) -> dt.datetime:
    return dt.datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
