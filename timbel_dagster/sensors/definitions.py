"""Schedules and sensors: when things run. They only build run requests."""

from __future__ import annotations

import dagster as dg

from timbel_dagster.assets.audit.report import audit_report_schedule
from timbel_dagster.jobs.definitions import delivery_ingestion_job
from timbel_dagster.sensors.backups import (
    backup_monitor,
    backup_schedule,
    base_backup_schedule,
)
from timbel_dagster.sensors.builds import gitlab_pipeline_sensor, jenkins_build_sensor
from timbel_dagster.sensors.clusters import cluster_discovery_sensor, cluster_metrics_schedule
from timbel_dagster.sensors.grants import run_grant_sensor
from timbel_dagster.sensors.health import deployment_health_sensor
from timbel_dagster.sensors.leases import release_canceled_run_leases, release_failed_run_leases
from timbel_dagster.sensors.ml import ml_retrain_schedule, risk_drift_sensor
from timbel_dagster.sensors.notifications import (
    alert_rule_sensor,
    delivery_notification_sensor,
    run_failure_notifier,
)
from timbel_dagster.sensors.registry import registry_image_sensor
from timbel_dagster.sensors.requests import request_expiry_sensor
from timbel_dagster.sensors.slo import slo_status_schedule
from timbel_dagster.sensors.webhooks import webhook_build_sensor, webhook_push_sensor


# Off until an operator turns it on: in live mode it needs the CI servers configured. It is the
# safety net under the build sensors: each hour, re-read today's partition.
@dg.schedule(
    name="delivery_ingestion_hourly",
    job=delivery_ingestion_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-read today's executions and the delivery history each hour.",
)
def delivery_ingestion_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return dg.RunRequest(
        run_key=f"delivery-hourly-{context.scheduled_execution_time:%Y-%m-%dT%H}",
        partition_key=day,
    )


def defs() -> dg.Definitions:
    return dg.Definitions(
        schedules=[
            delivery_ingestion_schedule,
            cluster_metrics_schedule,
            audit_report_schedule,
            ml_retrain_schedule,
            backup_schedule,
            base_backup_schedule,
            slo_status_schedule,
        ],
        sensors=[
            jenkins_build_sensor,
            gitlab_pipeline_sensor,
            cluster_discovery_sensor,
            alert_rule_sensor,
            delivery_notification_sensor,
            run_failure_notifier,
            release_failed_run_leases,
            release_canceled_run_leases,
            deployment_health_sensor,
            risk_drift_sensor,
            registry_image_sensor,
            run_grant_sensor,
            request_expiry_sensor,
            webhook_build_sensor,
            webhook_push_sensor,
            backup_monitor,
        ],
    )
