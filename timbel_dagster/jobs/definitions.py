"""Jobs: named selections of assets that schedules, sensors and people launch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from timbel_dagster.jobs.backup import backup
from timbel_dagster.jobs.base_backup import base_backup
from timbel_dagster.jobs.builds import follow_build, trigger_build
from timbel_dagster.jobs.deploy import deploy
from timbel_dagster.jobs.executors import ml_executor
from timbel_dagster.jobs.history import build_ci_history_job
from timbel_dagster.jobs.rollback import rollback
from timbel_dagster.jobs.security import scan_images
from timbel_dagster.jobs.tenants import delete_tenant_job, provision_tenant
from timbel_dagster.partitions import DEFAULT_HISTORY_START

delivery_ingestion_job = dg.define_asset_job(
    "delivery_ingestion",
    # Scaling history reads the clusters, not the delivery sources: it runs on its own.
    selection=dg.AssetSelection.groups("org", "cicd", "deploy")
    - dg.AssetSelection.assets(["deploy", "scaling_history"]),
    description="Ingest people, clusters, pipelines, executions, deployments and incidents, "
    "then recompute the DORA metrics.",
)


ci_ingestion_job = dg.define_asset_job(
    "ci_ingestion",
    selection=dg.AssetSelection.assets(
        ["cicd", "pipelines"], ["cicd", "pipeline_executions"]
    ).required_multi_asset_neighbors(),
    description="Ingest CI pipelines and the executions of a range of days (the build sensors "
    "launch it for each batch of new builds).",
)


cluster_metrics_job = dg.define_asset_job(
    "cluster_metrics",
    selection=dg.AssetSelection.groups("cluster"),
    description="Read node and pod usage of clusters and hours, summarise it per namespace and "
    "workload, and allocate its cost.",
)


ML_RETRAIN = {
    "name": "ml_retrain",
    "selection": dg.AssetSelection.groups("ml"),
    # The run queue runs one at a time (tag_concurrency_limits, deploy/helm/values.yaml).
    "tags": {"timbel/kind": "ml_retrain"},
    "description": "Rebuild the risk training set and retrain the risk model, then re-score, "
    "re-run bottleneck analysis and the cost forecast (weekly, and on drift).",
}
ml_retrain_job = dg.define_asset_job(**ML_RETRAIN)


security_inventory_job = dg.define_asset_job(
    "security_inventory",
    selection=dg.AssetSelection.groups("security"),
    description="List the registry's images, analyse the repositories' components, scan the "
    "images not scanned yet and summarise the open vulnerabilities.",
)


alert_evaluation_job = dg.define_asset_job(
    "alert_evaluation",
    selection=dg.AssetSelection.groups("alerts"),
    description="Evaluate every alert rule once, store fired and resolved alerts and send their "
    "notices (the alert sensor does the same each minute).",
)


slo_evaluation_job = dg.define_asset_job(
    "slo_evaluation",
    selection=dg.AssetSelection.groups("slo"),
    description="Evaluate every SLO of TIMBEL_SLO_FILE: SLI, error budget and burn rates, "
    "stored as history for the burn-rate alert rules (every 5 minutes when the file is set).",
)


dashboards_job = dg.define_asset_job(
    "grafana_dashboards",
    selection=dg.AssetSelection.groups("dashboards"),
    description="Write the Grafana dashboards and their provisioning files.",
)


scaling_history_job = dg.define_asset_job(
    "scaling_history",
    selection=dg.AssetSelection.assets(["deploy", "scaling_history"]),
    description="Read the clusters' replica counts and autoscaler events into the scaling history.",
)

backup_catalogue_job = dg.define_asset_job(
    "backup_catalogue",
    selection=dg.AssetSelection.groups("ops"),
    description="Record the backup catalogue's state (ops/backups: the last good backup, the "
    "failures of the last day); the `backup` job records it after every backup too.",
)


# Every asset is in one of these jobs. A run Timbel launches for some assets (`timbel demo`,
# `timbel metrics collect`) runs the job of their domain, never Dagster's anonymous
# `__ephemeral_asset_job__`, so the runs page says what ran (DESIGN 3.5c).
DOMAIN_JOBS = (
    delivery_ingestion_job.name,
    cluster_metrics_job.name,
    ml_retrain_job.name,
    security_inventory_job.name,
    alert_evaluation_job.name,
    slo_evaluation_job.name,
    dashboards_job.name,
    scaling_history_job.name,
    backup_catalogue_job.name,
    "audit_report",  # defined beside its weekly schedule (assets/audit/report.py)
)


def job_for(definitions: dg.Definitions, keys: Iterable[dg.AssetKey]) -> dg.JobDefinition:
    """The first of `DOMAIN_JOBS` that holds every asset of `keys`, to run them by name."""
    wanted = set(keys)
    for name in DOMAIN_JOBS:
        job = definitions.resolve_job_def(name)
        if wanted <= job.asset_layer.selected_asset_keys:
            return job
    names = ", ".join(sorted(key.to_user_string() for key in wanted))
    raise LookupError(f"no job of {', '.join(DOMAIN_JOBS)} holds every asset of {names}")


def defs(
    history_start: dt.date = DEFAULT_HISTORY_START, ml_executor_kind: str = "multiprocess"
) -> dg.Definitions:
    """Every job; `ci_history` refuses days before `history_start`; `ml_retrain` runs with
    the executor TIMBEL_ML_EXECUTOR names (`ml_executor_kind`, jobs/executors.py)."""
    executor = ml_executor(ml_executor_kind)
    ml_job = ml_retrain_job if executor is None else dg.define_asset_job(
        **ML_RETRAIN, executor_def=executor
    )  # fmt: skip
    return dg.Definitions(
        jobs=[
            build_ci_history_job(history_start),
            delivery_ingestion_job,
            ci_ingestion_job,
            cluster_metrics_job,
            ml_job,
            security_inventory_job,
            alert_evaluation_job,
            slo_evaluation_job,
            dashboards_job,
            scaling_history_job,
            backup_catalogue_job,
            follow_build,
            trigger_build,
            deploy,
            rollback,
            provision_tenant,
            delete_tenant_job,
            scan_images,
            backup,
            base_backup,
        ]
    )
