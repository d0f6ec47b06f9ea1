"""Jobs: named selections of assets that schedules, sensors and people launch."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from timbel_dagster.jobs.builds import follow_build, trigger_build
from timbel_dagster.jobs.deploy import deploy
from timbel_dagster.jobs.history import build_ci_history_job
from timbel_dagster.jobs.rollback import rollback
from timbel_dagster.jobs.security import scan_images
from timbel_dagster.jobs.tenants import provision_tenant
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


ml_retrain_job = dg.define_asset_job(
    "ml_retrain",
    selection=dg.AssetSelection.groups("ml"),
    description="Rebuild the risk training set and retrain the risk model, then re-score, "
    "re-run bottleneck analysis and the cost forecast (weekly, and on drift).",
)


def defs(history_start: dt.date = DEFAULT_HISTORY_START) -> dg.Definitions:
    """Every job; `ci_history` refuses days before `history_start`."""
    return dg.Definitions(
        jobs=[
            build_ci_history_job(history_start),
            delivery_ingestion_job,
            ci_ingestion_job,
            cluster_metrics_job,
            ml_retrain_job,
            follow_build,
            trigger_build,
            deploy,
            rollback,
            provision_tenant,
            scan_images,
        ]
    )
