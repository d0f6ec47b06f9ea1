"""Every asset is in a named job, so a run Timbel launches for it is never Dagster's
anonymous `__ephemeral_asset_job__` (DESIGN 3.5c)."""

from __future__ import annotations

import dagster as dg
import pytest

from timbel_dagster.definitions import build_definitions
from timbel_dagster.jobs.definitions import DOMAIN_JOBS, job_for

defs = build_definitions()


def test_every_asset_node_has_a_domain_job() -> None:
    for node in defs.assets or []:
        job = job_for(defs, node.keys)
        assert job.name in DOMAIN_JOBS
        assert set(node.keys) <= job.asset_layer.selected_asset_keys


@pytest.mark.parametrize(
    ("key", "job"),
    [
        (["cicd", "pipeline_executions"], "delivery_ingestion"),
        (["cluster", "cost_allocation"], "cluster_metrics"),
        (["ml", "risk_model"], "ml_retrain"),
        (["security", "scan_results"], "security_inventory"),
        (["alerts", "alert_events"], "alert_evaluation"),
        (["dashboards", "grafana_dashboards"], "grafana_dashboards"),
        (["deploy", "scaling_history"], "scaling_history"),
        (["audit", "audit_report"], "audit_report"),
    ],
)
def test_job_for_names_the_domain(key: list[str], job: str) -> None:
    assert job_for(defs, [dg.AssetKey(key)]).name == job


def test_job_for_an_unknown_asset_is_one_line() -> None:
    with pytest.raises(LookupError, match=r"no job of delivery_ingestion, .* holds every asset"):
        job_for(defs, [dg.AssetKey(["nowhere", "table"])])
