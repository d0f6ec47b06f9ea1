"""`audit/audit_report`: a weekly summary of the audit log, and the schedule that makes it.

The report is metadata only (nothing new is stored in the warehouse). Its `head_anchor`
records the chain's newest event in Dagster's event log, outside the warehouse: `timbel
audit verify` checks the newest report's anchor by itself (warehouse/audit/anchors.py), so
deleting the events up to it is found without anyone passing `--anchor`.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.warehouse.audit.chain import SYSTEM_ACTORS, latest_checkpoint, verify_chain

# ISO weeks, Monday 00:00 UTC to the next Monday (2024-01-01 is a Monday).
AUDIT_WEEKLY = dg.WeeklyPartitionsDefinition(start_date="2024-01-01", day_offset=1)
UNSUCCESSFUL = (".refused", ".failed")


def summarise(rows: list[tuple[str, str, int]], system_actors: tuple[str, ...]) -> dict:
    """Counts from `(actor, action, events)` rows: per action, per actor, and changes made
    by people versus automation (failed and refused attempts are not changes)."""
    by_action: dict[str, int] = {}
    by_actor: dict[str, int] = {}
    people = automation = unsuccessful = 0
    for actor, action, count in rows:
        by_action[action] = by_action.get(action, 0) + count
        by_actor[actor] = by_actor.get(actor, 0) + count
        if action.endswith(UNSUCCESSFUL):
            unsuccessful += count
        elif actor in system_actors:
            automation += count
        else:
            people += count
    return {
        "events": sum(by_action.values()),
        "by_action": sorted(by_action.items(), key=lambda item: (-item[1], item[0])),
        "by_actor": sorted(by_actor.items(), key=lambda item: (-item[1], item[0])),
        "changes_by_people": people,
        "changes_by_automation": automation,
        "unsuccessful": unsuccessful,
    }


@dg.asset(
    key=["audit", "audit_report"],
    group_name="audit",
    partitions_def=AUDIT_WEEKLY,
    kinds={"sql"},
    owners=OWNERS,
    description="One report per week: audit events by action and by actor, changes made by "
    "people versus automation, failed or refused attempts, and whether the hash chain of the "
    "audit log verifies.",
)
def audit_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    from sqlalchemy import func, or_, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import AuditEvent

    window = context.partition_time_window
    start, end = window.start.astimezone(dt.UTC), window.end.astimezone(dt.UTC)
    table = AuditEvent.__table__
    in_week = (table.c.at >= start) & (table.c.at < end)
    with warehouse.engine().connect() as connection:
        rows = connection.execute(
            select(table.c.actor, table.c.action, func.count())
            .where(in_week)
            .group_by(table.c.actor, table.c.action)
        ).all()
        attempts = connection.execute(
            select(table.c.id, table.c.at, table.c.actor, table.c.action, table.c.target)
            .where(in_week, or_(*(table.c.action.endswith(s) for s in UNSUCCESSFUL)))
            .order_by(table.c.id)
            .limit(20)
        ).all()
        chain = verify_chain(connection)
        checkpoint = latest_checkpoint(connection)
        oldest = connection.execute(select(func.min(table.c.at))).scalar_one_or_none()
    summary = summarise([tuple(r) for r in rows], SYSTEM_ACTORS)
    # Events archived before this report was made are no longer in the table to be counted.
    complete = checkpoint is None or (oldest is not None and oldest <= start)
    if not chain.intact:
        where = f"event {chain.first_broken_id}" if chain.first_broken_id else "the head"
        context.log.error(f"the audit log's hash chain is broken at {where}: {chain.reason}")
    if not complete:
        context.log.warning("part of this week is archived: counts cover what remains")
    problem = None
    if not chain.intact:
        problem = f"event {chain.first_broken_id}: {chain.reason}"
    return dg.MaterializeResult(
        metadata={
            "week_start": dg.MetadataValue.text(start.date().isoformat()),
            "week_end": dg.MetadataValue.text(end.date().isoformat()),
            "events": dg.MetadataValue.int(summary["events"]),
            "changes_by_people": dg.MetadataValue.int(summary["changes_by_people"]),
            "changes_by_automation": dg.MetadataValue.int(summary["changes_by_automation"]),
            "failed_or_refused": dg.MetadataValue.int(summary["unsuccessful"]),
            "by_action": markdown_table(
                [{"action": a, "events": n} for a, n in summary["by_action"]],
                ["action", "events"],
                limit=50,
            ),
            "by_actor": markdown_table(
                [
                    {
                        "actor": a,
                        "kind": "automation" if a in SYSTEM_ACTORS else "person",
                        "events": n,
                    }
                    for a, n in summary["by_actor"]
                ],
                ["actor", "kind", "events"],
                limit=50,
            ),
            "failed_or_refused_attempts": markdown_table(
                [
                    {
                        "id": r.id,
                        "at": f"{r.at:%Y-%m-%d %H:%M}",
                        "actor": r.actor,
                        "action": r.action,
                        "target": r.target or "",
                    }
                    for r in attempts
                ],
                ["id", "at", "actor", "action", "target"],
                limit=20,
            ),
            "complete": dg.MetadataValue.bool(complete),
            "chain_intact": dg.MetadataValue.bool(chain.intact),
            "rows_written": dg.MetadataValue.int(0),  # a report: it reads, it stores nothing
            "chain_events": dg.MetadataValue.int(chain.events),
            "chain_problem": dg.MetadataValue.text(problem or "none"),
            "head_anchor": dg.MetadataValue.text(chain.anchor or "none"),
        }
    )


audit_report_job = dg.define_asset_job(
    "audit_report",
    selection=dg.AssetSelection.assets(audit_report),
    description="Summarise one week of the audit log and verify its hash chain.",
)

# Off until an operator turns it on; when on, Monday 03:30 UTC reports the week just ended.
audit_report_schedule = dg.build_schedule_from_partitioned_job(
    audit_report_job,
    name="audit_report_weekly",
    hour_of_day=3,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Each Monday, report the week that just ended.",
)
