"""The nightly backup's schedule: off until an operator turns it on (it needs
TIMBEL_BACKUP_KEY where the runs execute)."""

from __future__ import annotations

import dagster as dg

from timbel_dagster.jobs.backup import backup

backup_schedule = dg.ScheduleDefinition(
    name="backup_nightly",
    job=backup,
    cron_schedule="17 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Back the warehouse up each night at 02:17 UTC (`timbel backup create`).",
)
