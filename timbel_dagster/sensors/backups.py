"""The nightly backup's schedule, off until an operator turns it on (it needs
TIMBEL_BACKUP_KEY where the runs execute), and `backup_monitor`, which alerts through the rule
engine when the last good backup is too old or the newest backup failed."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.jobs.backup import backup
from timbel_dagster.sensors.notifications import rules_of, tick_text

backup_schedule = dg.ScheduleDefinition(
    name="backup_nightly",
    job=backup,
    cron_schedule="17 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Back the warehouse up each night at 02:17 UTC and prune by the retention "
    "(`timbel backup create`, `timbel backup prune`).",
)


@dg.sensor(
    name="backup_monitor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluate the backup rules (built-in backup-stale: no good backup for 26 h; "
    "backup-failed: the newest backup failed) on the backup catalogue and notify through the "
    "alert rules' channels. Silent where no backup was ever tried.",
)
def backup_monitor(context: dg.SensorEvaluationContext, notifier: NotifierResource):
    watched = rules_of(context, notifier, backup=True)
    if not watched:
        return dg.SkipReason("no backup rules (backup-stale and backup-failed are turned off)")
    return dg.SkipReason(tick_text(context, notifier.evaluator(context.log), watched))
