"""`deploy/scaling_history` from the sample and from a cluster's HPA status and events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
from sqlalchemy import select

from tests.deploy.conftest import TOKEN_ENV
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import ScalingRecord

defs = build_definitions()  # the code location, partitions from the default start

KEY = dg.AssetKey(["deploy", "scaling_history"])


def _materialize(url: str, sources: DeliverySourcesResource) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs.assets or []),
        selection=[KEY],
        resources={"warehouse": WarehouseResource(database_url=url), "sources": sources},
    )


def _rows(url: str) -> list:
    with get_engine(url).connect() as connection:
        return connection.execute(
            select(ScalingRecord.workload, ScalingRecord.reason, ScalingRecord.desired_replicas)
        ).all()


def test_sample_scaling_history(warehouse_url: str) -> None:
    assert _materialize(warehouse_url, DeliverySourcesResource(mode="sample")).success
    rows = _rows(warehouse_url)
    assert {r.reason for r in rows} == {"status", "SuccessfulRescale"}
    assert all(2 <= r.desired_replicas <= 10 for r in rows if r.reason == "status")


def test_the_sample_is_read_as_of_the_configured_moment(warehouse_url: str) -> None:
    """`at` pins the sample's 24 hours (to the last completed hour before it), as `timbel
    demo` pins them to its cluster metrics' window: two reads as of moments in one hour store
    the same rows, whatever the wall clock did between them."""
    sources = DeliverySourcesResource(mode="sample")
    at = sources.sample().end_date.isoformat() + "T12:30:00"

    def read(moment: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            list(defs.assets or []), selection=[KEY],
            resources={"warehouse": WarehouseResource(database_url=warehouse_url),
                       "sources": sources},
            run_config={"ops": {"deploy__scaling_history": {"config": {"at": moment}}}},
        )  # fmt: skip

    assert read(at).success
    with get_engine(warehouse_url).connect() as connection:
        hours = connection.execute(select(ScalingRecord.at).distinct()).scalars().all()
    last = max(h if h.tzinfo else h.replace(tzinfo=dt.UTC) for h in hours)
    assert last == dt.datetime.fromisoformat(at).replace(minute=0, tzinfo=dt.UTC) - dt.timedelta(
        hours=1
    )
    again = read(at.replace("12:30", "12:59"))
    written = again.asset_materializations_for_node("deploy__scaling_history")[0]
    assert written.metadata["rows_written"].value == 0
    bad = dg.materialize(
        list(defs.assets or []), selection=[KEY], raise_on_error=False,
        resources={"warehouse": WarehouseResource(database_url=warehouse_url), "sources": sources},
        run_config={"ops": {"deploy__scaling_history": {"config": {"at": "noon"}}}},
    )  # fmt: skip
    assert not bad.success
    assert "scaling_history config 'at': 'noon' is not an ISO 8601 time" in str(
        bad.get_step_failure_events()[0].event_specific_data.error
    )


def test_cluster_hpa_status_and_events(warehouse_url: str, fakes: dict, tmp_path: Path) -> None:
    fake = fakes["prod-a"]
    fake.put(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "shop-api", "namespace": "shop"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "shop-api",
                },
                "minReplicas": 2,
                "maxReplicas": 10,
            },
            "status": {
                "currentReplicas": 4,
                "desiredReplicas": 5,
                "currentMetrics": [
                    {"type": "Resource",
                     "resource": {"name": "cpu", "current": {"averageUtilization": 91}}}
                ],
            },
        }
    )  # fmt: skip
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.put(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "shop-api.1", "namespace": "shop"},
            "involvedObject": {"kind": "HorizontalPodAutoscaler", "name": "shop-api"},
            "type": "Normal",
            "reason": "SuccessfulRescale",
            "message": "New size: 5; reason: cpu resource utilization above target",
            "count": 1,
            "lastTimestamp": at,
        }
    )
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(
        f"clusters:\n  - {{name: prod-a, group: prod, api_url: '{fake.url}', "
        f"token_env: {TOKEN_ENV}}}\n"
    )
    sources = DeliverySourcesResource(mode="live", clusters_file=str(clusters))
    assert _materialize(warehouse_url, sources).success
    assert sorted(_rows(warehouse_url)) == [
        ("shop-api", "SuccessfulRescale", None),
        ("shop-api", "status", 5),
    ]
