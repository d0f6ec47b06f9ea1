"""Every asset of the code location, by domain."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from timbel_dagster.assets.alerts.events import alert_events
from timbel_dagster.assets.audit.report import audit_report
from timbel_dagster.assets.cicd.commits import commits
from timbel_dagster.assets.cicd.dora_metrics import dora_metrics
from timbel_dagster.assets.cicd.executions import ci_executions, pipelines
from timbel_dagster.assets.cicd.logs import execution_logs
from timbel_dagster.assets.cluster.cost_allocation import cost_allocation
from timbel_dagster.assets.cluster.usage import (
    namespace_usage,
    node_metrics,
    pod_metrics,
    workload_status,
)
from timbel_dagster.assets.dashboards.assets import grafana_dashboards
from timbel_dagster.assets.deploy.history import delivery_history
from timbel_dagster.assets.deploy.scaling import scaling_history
from timbel_dagster.assets.freshness import with_freshness
from timbel_dagster.assets.ml.bottlenecks import pipeline_bottlenecks
from timbel_dagster.assets.ml.cost_forecast import cost_forecast
from timbel_dagster.assets.ml.risk import risk_model, risk_scores, risk_training_set
from timbel_dagster.assets.ops.backups import backups
from timbel_dagster.assets.org.directory import directory
from timbel_dagster.assets.security.components import components
from timbel_dagster.assets.security.images import images
from timbel_dagster.assets.security.scans import scan_results, vulnerability_findings
from timbel_dagster.assets.slo.status import slo_status
from timbel_dagster.partitions import DEFAULT_HISTORY_START, with_history_start
from timbel_dagster.settings.freshness import Windows, ingestion_windows


def defs(
    history_start: dt.date = DEFAULT_HISTORY_START, freshness: dict[str, Windows] | None = None
) -> dg.Definitions:
    """Every asset, the daily and hourly partitions starting on `history_start`, the
    ingestion assets with the freshness policies of `freshness` (default: the default
    windows)."""
    assets = with_history_start(
        [
            directory,
            pipelines,
            ci_executions,
            execution_logs,
            commits,
            delivery_history,
            dora_metrics,
            node_metrics,
            pod_metrics,
            namespace_usage,
            workload_status,
            cost_allocation,
            slo_status,
            alert_events,
            grafana_dashboards,
            audit_report,
            scaling_history,
            risk_training_set,
            risk_model,
            risk_scores,
            pipeline_bottlenecks,
            cost_forecast,
            images,
            scan_results,
            vulnerability_findings,
            components,
            backups,
        ],
        history_start,
    )
    return dg.Definitions(
        assets=with_freshness(assets, ingestion_windows() if freshness is None else freshness)
    )
