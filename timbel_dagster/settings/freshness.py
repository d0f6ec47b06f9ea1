"""How fresh each ingestion asset is expected to be: the freshness windows, per source.

An ingestion asset reads an external system (CI servers, git, Prometheus and the clusters, the
OCI registry, Trivy). Each belongs to one source group, whose windows are two settings
(`TIMBEL_FRESHNESS_<GROUP>_WARN_HOURS` / `..._FAIL_HOURS`): past the warn window since its last
successful materialization the asset is WARN in the Dagster UI, past the fail window FAIL, and
the built-in `ingestion-stale` alert rule fires. The definitions put these windows on the
assets as Dagster freshness policies, and the alert reads the same windows, so the UI and the
alert agree. Plain data here (no pydantic, no Dagster): the code location, built without
settings in tests, takes the defaults.

One derived asset has a policy too: `slo/slo_status`, which the `slo_status_every_5m`
schedule evaluates every 5 minutes once TIMBEL_SLO_FILE is set. Its windows follow that
cadence, not a setting, and no alert rule reads them (`ingestion-stale` is about ingestion).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Windows:
    """Warn after `warn`, fail after `fail` without a successful materialization."""

    warn: dt.timedelta
    fail: dt.timedelta


# Default (warn, fail) hours per group, from how often each is expected to update.
DEFAULT_HOURS: dict[str, tuple[float, float]] = {
    # Build sensors every 60 s when builds arrive; the hourly delivery_ingestion schedule
    # re-reads today's partition whatever happens: one missed hour warns, three fail.
    "ci": (2.0, 4.0),
    # Commits, deployments, incidents, people and clusters: the hourly delivery_ingestion run.
    "delivery": (2.0, 4.0),
    # The hourly cluster_metrics schedule (each run at :05 for the hour before): one missed
    # hour warns, two fail.
    "cluster": (2.0, 3.0),
    # The registry, scans, repository analysis and autoscaler state: the security_inventory
    # and scaling_history jobs, which an operator runs daily (no schedule ships on).
    "inventory": (26.0, 48.0),
}

# Every ingestion asset (`domain/table`) and its group. Assets not listed compute from the
# warehouse only (DORA metrics, cost allocation, workload status, ML, dashboards, alerts,
# the audit report, open vulnerability summaries): their freshness follows their inputs'.
INGESTION_ASSETS: dict[str, str] = {
    "cicd/pipelines": "ci",
    "cicd/pipeline_executions": "ci",
    "cicd/stage_executions": "ci",
    "cicd/execution_logs": "ci",
    "cicd/commits": "delivery",
    "deploy/deployments": "delivery",
    "deploy/incidents": "delivery",
    "org/users": "delivery",
    "org/clusters": "delivery",
    "cluster/node_metrics": "cluster",
    "cluster/pod_metrics": "cluster",
    "cluster/namespace_usage": "cluster",
    "deploy/scaling_history": "inventory",
    "security/images": "inventory",
    "security/scan_results": "inventory",
    "security/components": "inventory",
}


def setting_names(group: str) -> tuple[str, str]:
    """The settings' field names of a group's (warn, fail) windows."""
    return f"timbel_freshness_{group}_warn_hours", f"timbel_freshness_{group}_fail_hours"


def group_windows(settings: Any = None) -> dict[str, Windows]:
    """Each group's windows: from `settings`, or the defaults when None (tests build the
    code location without settings)."""
    found = {}
    for group, (warn, fail) in DEFAULT_HOURS.items():
        if settings is not None:
            warn_name, fail_name = setting_names(group)
            warn, fail = getattr(settings, warn_name), getattr(settings, fail_name)
        found[group] = Windows(dt.timedelta(hours=warn), dt.timedelta(hours=fail))
    return found


def ingestion_windows(settings: Any = None) -> dict[str, Windows]:
    """Each ingestion asset's windows (`domain/table` -> Windows); none in sample mode.

    The sample is a fixed history that nothing refreshes: with policies, every ingestion
    asset would show FAIL in the UI four hours after `timbel demo`, and `ingestion-stale`
    would fire, about data that is as fresh as it will ever be."""
    if settings is not None and getattr(settings, "timbel_sample_data", False):
        return {}
    groups = group_windows(settings)
    return {asset: groups[group] for asset, group in INGESTION_ASSETS.items()}


# `slo/slo_status`: evaluated every 5 minutes by the slo_status_every_5m schedule (a cadence
# fixed in sensors/slo.py), so two missed evaluations in a row warn and five fail; its
# burn-rate alerts read its latest rows, which a stalled schedule leaves behind unseen.
SLO_STATUS_ASSET = "slo/slo_status"
SLO_STATUS_WINDOWS = Windows(warn=dt.timedelta(minutes=15), fail=dt.timedelta(minutes=30))


def slo_windows(settings: Any = None) -> dict[str, Windows]:
    """`slo/slo_status`'s windows when the schedule evaluates it: TIMBEL_SLO_FILE set, not
    sample mode (whose SLOs `timbel demo` evaluates once, like the rest of the fixed sample).
    None without settings: no SLO file is known then."""
    if settings is None or getattr(settings, "timbel_sample_data", False):
        return {}
    if not getattr(settings, "timbel_slo_file", None):
        return {}
    return {SLO_STATUS_ASSET: SLO_STATUS_WINDOWS}


def asset_windows(settings: Any = None) -> dict[str, Windows]:
    """Every asset's freshness windows the definitions apply: the ingestion assets' and
    `slo/slo_status`'s (`domain/table` -> Windows)."""
    return ingestion_windows(settings) | slo_windows(settings)
