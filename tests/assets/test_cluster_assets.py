"""The cluster usage and cost assets, their automation and `timbel metrics collect`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select, text

from tests.conftest import missing_service
from tests.services.kube_series import HOURS, write_kube_history
from tests.services.prometheus import running_prometheus
from tests.test_cli import invoke
from timbel_dagster.assets.cluster.cost import PriceTable
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.partitions import CLUSTERS, hour_key, range_tags
from timbel_dagster.resources.prometheus import PrometheusResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.clusters import (
    cluster_discovery_sensor,
    cluster_metrics_schedule,
    plan_clusters,
)
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import Base

defs = build_definitions()  # the code location, partitions from the default start

ASSETS = list(defs.assets or [])
CLUSTER_GROUP = dg.AssetSelection.groups("cluster")
TABLES = (
    "node_metrics",
    "pod_metrics",
    "namespace_usage",
    "workload_status",
    "cost_allocations",
    "cluster_costs",
    "rightsizing_suggestions",
)
SAMPLE_CLUSTERS = ["seoul-dev-01", "seoul-stg-01", "seoul-prod-01"]
DAY = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _counts(url: str) -> dict[str, int]:
    with get_engine(url).connect() as connection:
        return {
            t: connection.execute(
                select(func.count()).select_from(Base.metadata.tables[t])
            ).scalar_one()
            for t in TABLES
        }


def _collect(url: str, instance: dg.DagsterInstance, sources, first: str, last: str, **kw):
    return dg.materialize(
        ASSETS,
        instance=instance,
        selection=CLUSTER_GROUP,
        resources={"warehouse": WarehouseResource(database_url=url), "sources": sources},
        tags=range_tags(first, last),
        **kw,
    )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    # In memory: a run of 72 cluster-hour partitions writes hundreds of Dagster events, and
    # the on-disk SQLite instance of `instance_for_test` made this file 4x slower.
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def instance_on_disk() -> Iterator[dg.DagsterInstance]:
    # A schedule's context carries a reference to its instance, which an in-memory one has not.
    with dg.instance_for_test() as instance:
        yield instance


def test_sample_day_of_three_clusters(warehouse_url: str, instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions(CLUSTERS.name, SAMPLE_CLUSTERS)
    sources = DeliverySourcesResource(mode="sample", sample_seed=7)
    first, last = f"seoul-dev-01|{hour_key(DAY)}", "seoul-prod-01|2026-11-01-23:00"
    result = _collect(warehouse_url, instance, sources, first, last)
    assert result.success
    counts = _counts(warehouse_url)
    # 12 nodes x 24 h; 12 services x (1 + 2 + 3) replicas x 24 h; 4 namespaces x 3 clusters.
    assert counts["node_metrics"] == 12 * 24
    assert counts["pod_metrics"] == 72 * 24
    assert counts["namespace_usage"] == 4 * 3 * 24
    assert counts["workload_status"] == counts["cost_allocations"] == 12 * 3 * 24
    assert counts["cluster_costs"] == 3 * 24
    assert counts["rightsizing_suggestions"] == 12 * 3
    with get_engine(warehouse_url).connect() as connection:
        allocated, idle, capacity = connection.execute(
            text(
                "SELECT SUM(allocated_cost), SUM(idle_cost), SUM(capacity_cost) FROM cluster_costs"
            )
        ).one()
        charged = connection.execute(text("SELECT SUM(total_cost) FROM cost_allocations")).scalar()
        crash = connection.execute(
            text("SELECT COUNT(*) FROM workload_status WHERE crash_looping_pods > 0 AND healthy")
        ).scalar()
        unhealthy = (
            connection.execute(
                text("SELECT DISTINCT workload FROM workload_status WHERE NOT healthy")
            )
            .scalars()
            .all()
        )
        top = (
            connection.execute(
                text("SELECT workload FROM rightsizing_suggestions ORDER BY saving_per_hour DESC")
            )
            .scalars()
            .first()
        )
    assert charged == pytest.approx(allocated)
    assert idle >= 0 and allocated + idle >= capacity - 1e-6
    assert crash == 0  # a crash-looping workload is never healthy
    assert unhealthy == ["auth-gateway"]  # the sample's crash-looping service in dev
    assert top == "ml-scoring"  # requests about four times what it uses
    again = _collect(warehouse_url, instance, sources, first, last)
    written = [
        e.step_materialization_data.materialization.metadata["rows_written"].value
        for e in again.get_asset_materialization_events()
    ]
    assert written and not any(written)  # idempotent: a re-run changes nothing
    assert _counts(warehouse_url) == counts


def test_one_partition_reads_one_cluster_hour(
    warehouse_url: str, instance: dg.DagsterInstance
) -> None:
    instance.add_dynamic_partitions(CLUSTERS.name, SAMPLE_CLUSTERS)
    key = dg.MultiPartitionKey({"cluster": "seoul-prod-01", "hour": hour_key(DAY)})
    result = dg.materialize(
        ASSETS,
        instance=instance,
        selection=CLUSTER_GROUP,
        partition_key=key,
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(mode="sample"),
        },
    )
    assert result.success
    assert _counts(warehouse_url)["node_metrics"] == 6  # the prod cluster's nodes, one hour


def test_prices_come_from_config(warehouse_url: str, instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions(CLUSTERS.name, SAMPLE_CLUSTERS)
    key = f"seoul-dev-01|{hour_key(DAY)}"
    config = {"ops": {"cluster__cost_allocation": {"config": {"cpu_core_hour": 1.0}}}}
    sources = DeliverySourcesResource(mode="sample")
    assert _collect(warehouse_url, instance, sources, key, key, run_config=config).success
    with get_engine(warehouse_url).connect() as connection:
        cpu, charged = connection.execute(
            text("SELECT SUM(cpu_cost), SUM(cpu_charged_cores) FROM cost_allocations")
        ).one()
    assert cpu == pytest.approx(charged)  # 1 USD per core-hour
    assert PriceTable().cpu_core_hour == 0.031611


@pytest.fixture(scope="module")
def kube_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with running_prometheus(tmp_path_factory.mktemp("kube"), write_kube_history) as url:
            yield url
    except FileNotFoundError as error:
        missing_service(str(error))


def _live(url: str) -> DeliverySourcesResource:
    return DeliverySourcesResource(mode="live", prometheus=PrometheusResource(url=url))


def test_prometheus_hours_reach_the_warehouse(
    warehouse_url: str, instance: dg.DagsterInstance, kube_prometheus: str
) -> None:
    instance.add_dynamic_partitions(CLUSTERS.name, ["east", "west"])
    first, last = f"east|{hour_key(HOURS[0])}", f"west|{hour_key(HOURS[-1])}"
    assert _collect(warehouse_url, instance, _live(kube_prometheus), first, last).success
    with get_engine(warehouse_url).connect() as connection:
        nodes = connection.execute(text("SELECT COUNT(*) FROM node_metrics")).scalar()
        sources = connection.execute(text("SELECT DISTINCT source FROM pod_metrics")).scalars()
        status = Base.metadata.tables["workload_status"]
        crash = connection.execute(
            select(status.c.workload, status.c.hour).where(status.c.crash_looping_pods > 0)
        ).all()
        tenant = (
            connection.execute(
                text("SELECT DISTINCT tenant FROM cost_allocations WHERE namespace = 'shop'")
            )
            .scalars()
            .all()
        )
    assert nodes == 3 * len(HOURS)
    assert list(sources) == ["prometheus"]
    assert [tuple(row) for row in crash] == [("etl", HOURS[1])]
    assert sorted(tenant) == ["retail", "shop"]  # east labels its namespace, west does not


def test_prometheus_down_fails_and_writes_nothing(
    warehouse_url: str, instance: dg.DagsterInstance
) -> None:
    instance.add_dynamic_partitions(CLUSTERS.name, ["east"])
    key = f"east|{hour_key(HOURS[0])}"
    result = _collect(
        warehouse_url, instance, _live("http://127.0.0.1:9"), key, key, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "cannot reach http://127.0.0.1:9" in str(failure.event_specific_data.error)
    assert not any(_counts(warehouse_url).values())


@pytest.mark.parametrize(
    ("wanted", "existing", "add", "delete"),
    [
        (["a", "b"], [], ["a", "b"], []),
        (["a", "b"], ["a", "b"], [], []),
        (["b", "c"], ["a", "b"], ["c"], ["a"]),
        ([], ["a"], [], ["a"]),
    ],
)
def test_plan_clusters(wanted, existing, add, delete) -> None:
    assert plan_clusters(wanted, existing) == (add, delete)


def _discover(instance: dg.DagsterInstance, sources: DeliverySourcesResource) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, resources={"sources": sources}) as context:
        return cluster_discovery_sensor(context)


def test_discovery_sensor_adds_the_sample_clusters(instance: dg.DagsterInstance) -> None:
    sources = DeliverySourcesResource(mode="sample")
    (request,) = _discover(instance, sources).dynamic_partitions_requests
    assert list(request.partition_keys) == SAMPLE_CLUSTERS
    instance.add_dynamic_partitions(CLUSTERS.name, ["retired", *SAMPLE_CLUSTERS])
    (request,) = _discover(instance, sources).dynamic_partitions_requests
    assert isinstance(request, dg.DeleteDynamicPartitionsRequest)
    assert list(request.partition_keys) == ["retired"]


def test_discovery_sensor_skips_when_metrics_are_not_configured(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timbel_dagster.settings import get_settings

    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    get_settings.cache_clear()
    result = _discover(instance, DeliverySourcesResource(mode="live"))
    assert "PROMETHEUS_URL" in (result.skip_reason.skip_message or "")


def test_hourly_schedule_reads_the_hour_that_ended(
    warehouse_url: str, instance_on_disk: dg.DagsterInstance
) -> None:
    instance = instance_on_disk
    moment = dt.datetime(2026, 11, 1, 10, 5, tzinfo=dt.UTC)
    empty = cluster_metrics_schedule(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=moment)
    )
    assert isinstance(empty, dg.SkipReason)
    instance.add_dynamic_partitions(CLUSTERS.name, SAMPLE_CLUSTERS)
    request = cluster_metrics_schedule(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=moment)
    )
    assert request.run_key == "cluster-metrics-2026-11-01-09:00"
    job = defs.get_job_def("cluster_metrics")
    result = job.execute_in_process(
        instance=instance,
        tags=request.tags,
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(mode="sample"),
        },
    )
    assert result.success
    assert _counts(warehouse_url)["cluster_costs"] == 3  # every cluster, that one hour


def test_metrics_collect_cli(tmp_path: Path) -> None:
    done = invoke(
        ["metrics", "collect", "--hours", "2", "--json"], tmp_path, TIMBEL_SAMPLE_DATA="true"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["clusters"] == SAMPLE_CLUSTERS
    assert report["hours"] == 2
    assert {r["namespace"] for r in report["namespaces"]} == {
        "commerce",
        "data",
        "payments",
        "platform",
    }
    assert all(r["cost_usd"] > 0 and r["hours"] == 2 for r in report["namespaces"])
    table = invoke(["metrics", "collect"], tmp_path, TIMBEL_SAMPLE_DATA="true")
    assert table.returncode == 0, table.stderr
    assert "COST" in table.stdout and "seoul-prod-01" in table.stdout
    assert "$" in table.stdout and "allocated; run" in table.stdout
    bad = invoke(["metrics", "collect", "--hours", "0"], tmp_path, TIMBEL_SAMPLE_DATA="true")
    assert bad.returncode == 2
    assert "--hours must be between 1 and" in bad.stderr
