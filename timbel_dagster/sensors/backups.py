"""The nightly backup's schedule, off until an operator turns it on (it needs
TIMBEL_BACKUP_KEY where the runs execute); the weekly base backup's, off too and skipping while
TIMBEL_BASE_BACKUP_DIR is unset; and `backup_monitor`, which alerts through the rule engine
when the last good backup or base backup is too old, or the newest one failed."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.jobs.backup import backup
from timbel_dagster.jobs.base_backup import base_backup
from timbel_dagster.sensors.notifications import rules_of, tick_text
from timbel_dagster.settings import get_settings

backup_schedule = dg.ScheduleDefinition(
    name="backup_nightly",
    job=backup,
    cron_schedule="17 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Back the warehouse up each night at 02:17 UTC and prune by the retention "
    "(`timbel backup create`, `timbel backup prune`).",
)


# Off until an operator turns it on, like the nightly backup: a base backup copies the whole
# cluster and needs a REPLICATION role, pg_basebackup on the run worker and an archiving
# server to be of use. Turned on, it still skips until TIMBEL_BASE_BACKUP_DIR names where the
# copies go: the default under TIMBEL_HOME is fine for `timbel backup base` by hand, not for a
# full copy of the cluster every week on a run worker's disk nobody chose. Weekly, an hour
# after the nightly backup: recovery replays the WAL from the base backup on, so a fresher
# one is a shorter recovery (docs/operations.md, "Point-in-time recovery").
@dg.schedule(
    name="base_backup_weekly",
    job=base_backup,
    cron_schedule="17 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Take a base backup of the warehouse's PostgreSQL cluster each Sunday at 03:17 "
    "UTC for point-in-time recovery and keep the newest TIMBEL_BASE_BACKUP_KEEP (`timbel "
    "backup base`, `timbel backup prune-bases`); skips while TIMBEL_BASE_BACKUP_DIR is unset.",
)
def base_backup_schedule(context: dg.ScheduleEvaluationContext):
    if get_settings().timbel_base_backup_dir is None:
        return dg.SkipReason(
            "no base backups: set TIMBEL_BASE_BACKUP_DIR where this schedule and its runs "
            'execute (docs/operations.md, "Point-in-time recovery")'
        )
    return dg.RunRequest(run_key=f"base-backup-{context.scheduled_execution_time:%Y-%m-%d}")


@dg.sensor(
    name="backup_monitor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluate the backup rules (built-in backup-stale: no good backup for 26 h; "
    "backup-failed: the newest backup failed) on the backup catalogue, and the base backup "
    "rules (base-backup-stale: no base backup for 8 days; base-backup-failed: the newest base "
    "backup failed) on the audit log's backup.base and backup.base_fail events, and notify "
    "through the alert rules' channels. Each is silent where no backup of its kind was ever "
    "tried.",
)
def backup_monitor(context: dg.SensorEvaluationContext, notifier: NotifierResource):
    watched = rules_of(context, notifier, backup=True)
    if not watched:
        return dg.SkipReason(
            "no backup rules (backup-stale, backup-failed, base-backup-stale and "
            "base-backup-failed are turned off)"
        )
    return dg.SkipReason(tick_text(context, notifier.evaluator(context.log), watched))
