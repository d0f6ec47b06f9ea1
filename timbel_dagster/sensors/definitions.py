"""Schedules and sensors: when things run. They only build run requests."""

from __future__ import annotations

import dagster as dg

from timbel_dagster.jobs.definitions import delivery_ingestion_job

# Off until an operator turns it on: in live mode it needs the CI servers configured.
delivery_ingestion_schedule = dg.ScheduleDefinition(
    name="delivery_ingestion_hourly",
    job=delivery_ingestion_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-read the recent window of every delivery source each hour.",
)


def defs() -> dg.Definitions:
    return dg.Definitions(schedules=[delivery_ingestion_schedule])
