"""Deployments, incidents and DORA in live mode, derived from stored CI executions."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from sqlalchemy import select

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord, StageRecord
from timbel_dagster.resources.derived import CIDerivedHistory
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import Deployment, DoraMetric, Incident
from timbel_dagster.warehouse.store.loaders import store_executions, store_pipelines

defs = build_definitions()  # the code location, partitions from the default start

MONDAY = dt.datetime(2026, 10, 5, 9, tzinfo=dt.UTC)
DEPLOY = r"(?i)deploy|release|rollout"
PROD = r"(?i)prod"


def _build(
    number: int, hours: float, deploy_status: str, stage: str = "Deploy to production"
) -> ExecutionRecord:
    start = MONDAY + dt.timedelta(hours=hours)
    return ExecutionRecord(
        pipeline="shop/api/main",
        external_id=str(number),
        sequence=number,
        status="success" if deploy_status == "success" else "failed",
        triggered_by="ci",
        started_at=start,
        completed_at=start + dt.timedelta(minutes=10),
        duration=600.0,
        commit_sha=f"{number:040x}",
        branch="main",
        url=None,
        stages=(
            StageRecord("1", "Build", 0, "success", start, 120.0),
            StageRecord(
                "2", "Deploy to staging", 1, "success", start + dt.timedelta(minutes=2), 60.0
            ),
            StageRecord("3", stage, 2, deploy_status, start + dt.timedelta(minutes=4), 90.0),
        ),
    )


def _store(url: str) -> None:
    with get_engine(url).begin() as connection:
        store_pipelines(
            connection,
            "jenkins",
            [PipelineRecord("jenkins", "shop/api/main", "api", None, "main", None)],
        )
        store_executions(
            connection,
            "jenkins",
            [
                _build(1, 0, "success"),
                _build(2, 24, "failed"),
                _build(3, 26, "success"),
                _build(4, 48, "success"),
                _build(5, 50, "skipped"),
            ],
        )


def test_deployments_and_incidents_from_deploy_stages(warehouse_url: str) -> None:
    _store(warehouse_url)
    history = CIDerivedHistory(
        WarehouseResource(database_url=warehouse_url).stored_stages, "jenkins", DEPLOY, PROD
    )
    window = (MONDAY - dt.timedelta(days=1), MONDAY + dt.timedelta(days=7))
    deployments = history.deployments(*window)
    assert [(d.environment, d.status) for d in deployments if d.environment == "prod"] == [
        ("prod", "success"),
        ("prod", "failed"),
        ("prod", "success"),
        ("prod", "success"),
    ]
    assert {d.environment for d in deployments} == {"prod", "staging"}
    [incident] = history.incidents(*window)
    assert incident.caused_by_deployment == "shop/api/main#2/3"
    assert incident.restored_by_deployment == "shop/api/main#3/3"
    assert incident.resolved_at - incident.opened_at == dt.timedelta(hours=2)


def test_live_mode_dora_from_ci(warehouse_url: str) -> None:
    _store(warehouse_url)
    resources = {
        "warehouse": WarehouseResource(database_url=warehouse_url),
        "sources": DeliverySourcesResource(
            mode="live",
            history_days=3650,
            jenkins=JenkinsResource(url="http://127.0.0.1:1/", jobs=[]),
        ),
    }
    result = dg.materialize(
        list(defs.assets or []),
        resources=resources,
        selection=[
            dg.AssetKey(["deploy", "deployments"]),
            dg.AssetKey(["deploy", "incidents"]),
            dg.AssetKey(["cicd", "commits"]),
            dg.AssetKey(["cicd", "dora_metrics"]),
        ],
    )
    assert result.success
    with get_engine(warehouse_url).connect() as connection:
        sources = set(connection.execute(select(Deployment.source)).scalars())
        incidents = connection.execute(select(Incident.resolved_at)).scalars().all()
        week = connection.execute(
            select(DoraMetric).where(DoraMetric.service == "*", DoraMetric.environment == "prod")
        ).one()
    assert sources == {"jenkins"} and len(incidents) == 1
    assert week.deployments == 3 and week.change_failure_rate == 0.25
    assert week.time_to_restore_hours_median == 2.0
