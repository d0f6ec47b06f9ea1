"""The assets, materialized through Dagster against each backend."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from sqlalchemy import func, select

from timbel_dagster.assets.cicd.executions import ExecutionWindowConfig
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.partitions import range_tags
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import (
    AuditEvent,
    Deployment,
    DoraMetric,
    PipelineExecution,
    StageExecution,
)

defs = build_definitions()  # the code location, partitions from the default start

ASSETS = list(defs.assets or [])


def _resources(url: str, mode: str = "sample") -> dict:
    return {
        "warehouse": WarehouseResource(database_url=url),
        "sources": DeliverySourcesResource(mode=mode, sample_seed=7, sample_end_date="2026-11-01"),
    }


# The sample's last four weeks (it ends 2026-11-01): its daily partitions are what the CI
# assets run over; the delivery history is not partitioned and is read whole. (Three months
# made this file one of the slowest of the suite and tested nothing more.)
FIRST_DAY, DAY_AFTER = dt.date(2026, 10, 5), dt.date(2026, 11, 2)
SAMPLE_DAYS = range_tags(FIRST_DAY.isoformat(), DAY_AFTER.isoformat())


def _in_window(history) -> list:
    """The executions the CI assets read for SAMPLE_DAYS: those that started in the range or
    on the day before it (`lookback_days`, for builds still running at the last read)."""
    lookback = dt.timedelta(days=ExecutionWindowConfig().lookback_days)
    since = dt.datetime.combine(FIRST_DAY, dt.time(), dt.UTC) - lookback
    until = dt.datetime.combine(DAY_AFTER, dt.time(), dt.UTC)
    return [e for e in history.executions if since <= e.started_at < until]


def _materialize(url: str, mode: str = "sample", **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        resources=_resources(url, mode),
        tags=SAMPLE_DAYS,
        selection=dg.AssetSelection.groups("org", "cicd", "deploy"),
        **kwargs,
    )


def _count(url: str, model: type) -> int:
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def _written(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata[
            "rows_written"
        ].value
        for e in result.get_asset_materialization_events()
    }


def test_every_asset_materializes_and_a_rerun_writes_nothing(
    warehouse_url: str, sample_source
) -> None:
    history = sample_source.history
    executions = _in_window(history)
    assert 0 < len(executions) < len(history.executions)
    first = _materialize(warehouse_url)
    assert first.success
    written = _written(first)
    assert written["cicd/pipeline_executions"] == len(executions)
    assert written["cicd/stage_executions"] == sum(len(e.stages) for e in executions)
    assert written["deploy/deployments"] == len(history.deployments)
    assert written["cicd/dora_metrics"] > 12
    assert _count(warehouse_url, PipelineExecution) == len(executions)
    with get_engine(warehouse_url).connect() as connection:
        assert set(connection.execute(select(Deployment.source)).scalars()) == {"sample"}

    second = _materialize(warehouse_url)
    assert set(_written(second).values()) == {0}
    assert _count(warehouse_url, StageExecution) == written["cicd/stage_executions"]
    # one audit event per ingesting step and run, and the chain holds
    with get_engine(warehouse_url).connect() as connection:
        assert verify_chain(connection).intact
        actions = (
            connection.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all()
        )
    assert actions == ["ingest"] * 10  # 5 ingesting steps (commits on their own), 2 runs


def test_dora_rows_for_the_organisation_and_every_service(warehouse_url: str) -> None:
    _materialize(warehouse_url)
    with get_engine(warehouse_url).connect() as connection:
        services = set(connection.execute(select(DoraMetric.service)).scalars())
        failure = connection.execute(
            select(func.avg(DoraMetric.change_failure_rate)).where(DoraMetric.service == "*")
        ).scalar_one()
    assert "*" in services and len(services) == 13
    assert 0.05 < failure < 0.35


def test_live_mode_without_servers_fails_loudly(warehouse_url: str) -> None:
    with pytest.raises(SourceNotConfiguredError, match="set JENKINS_URL or GITLAB_URL"):
        dg.materialize(
            ASSETS,
            resources=_resources(warehouse_url, mode="live"),
            selection=dg.AssetSelection.assets(
                ["cicd", "pipeline_executions"]
            ).required_multi_asset_neighbors(),
            partition_key="2026-11-01",
        )
    assert _count(warehouse_url, PipelineExecution) == 0


def test_unknown_source_mode_is_refused(warehouse_url: str) -> None:
    with pytest.raises(ValueError, match=r"sources\.mode must be 'sample' or 'live'"):
        dg.materialize(
            ASSETS,
            resources=_resources(warehouse_url, mode="staging"),
            selection=dg.AssetSelection.assets(["org", "users"]).required_multi_asset_neighbors(),
        )


def test_execution_logs_are_stored_for_failed_builds(warehouse_url: str) -> None:
    from timbel_dagster.warehouse.read.log_search import search_logs
    from timbel_dagster.warehouse.schema.models import ExecutionLog

    _materialize(warehouse_url)
    with get_engine(warehouse_url).connect() as connection:
        failed = connection.execute(
            select(func.count())
            .select_from(PipelineExecution)
            .where(PipelineExecution.status.in_(["failed", "aborted"]))
        ).scalar_one()
        logs = connection.execute(select(func.count()).select_from(ExecutionLog)).scalar_one()
        found = search_logs(connection, "exited with code 1", limit=5)
    assert logs == failed > 0
    assert found and all("ERROR:" in m.line for m in found)
    again = _materialize(warehouse_url)
    assert _written(again)["cicd/execution_logs"] == 0  # complete logs are not fetched again
