"""`webhook_build_sensor` and `webhook_push_sensor`: pending deliveries become the runs the
polling sensors would request, each delivery is taken once."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.api.webhooks.conftest import deliveries, fixture
from timbel_dagster.assets.cicd.executions import CI_SYSTEMS_TAG
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.partitions import RANGE_END_TAG, RANGE_START_TAG
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.registry import SCAN_JOB
from timbel_dagster.sensors.webhooks import webhook_build_sensor, webhook_push_sensor
from timbel_dagster.warehouse.deliveries import Delivery, receive
from timbel_dagster.warehouse.engine import get_engine

DIGEST = "sha256:" + "d" * 64


def _tick(sensor, warehouse_url: str, **resources) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)} | resources,
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


@pytest.fixture
def engine(warehouse_url: str):
    return get_engine(warehouse_url)


def test_ci_deliveries_request_one_ingestion_per_system_and_follow_running_builds(
    engine, warehouse_url: str
) -> None:
    running = fixture("gitlab", "hooks", "pipeline_hook.json")
    running["object_attributes"] |= {"status": "running", "finished_at": None}
    receive(engine, Delivery("gitlab", "u1", "Pipeline Hook", "gitlab-org/gitlab-test", running))
    jenkins = {"name": "api", "url": "job/shop/job/api/",
               "build": {"number": 7, "phase": "COMPLETED", "status": "SUCCESS",
                         "timestamp": 1733300000000}}  # fmt: skip
    receive(engine, Delivery("jenkins", "shop/api#7:COMPLETED", "COMPLETED", "shop/api", jenkins))

    result = _tick(webhook_build_sensor, warehouse_url)

    by_job: dict[str, list[dg.RunRequest]] = {}
    for request in result.run_requests or []:
        by_job.setdefault(request.job_name, []).append(request)
    ingest = {r.tags[CI_SYSTEMS_TAG]: r for r in by_job["ci_ingestion"]}
    assert set(ingest) == {"gitlab", "jenkins"}
    # From the day the pipeline was created (2016-08-12) to the day it was received.
    assert ingest["gitlab"].tags[RANGE_START_TAG] == "2016-08-12"
    assert ingest["jenkins"].tags[RANGE_START_TAG] == "2024-12-04"
    assert ingest["gitlab"].tags[RANGE_END_TAG] >= "2026-01-01"
    # The running pipeline is followed under the build sensor's own run key.
    assert [r.run_key for r in by_job["follow_build"]] == [
        "follow-gitlab-gitlab-org/gitlab-test-31"
    ]
    taken = deliveries(engine, "gitlab") + deliveries(engine, "jenkins")
    assert {d["status"] for d in taken} == {"taken"}

    again = _tick(webhook_build_sensor, warehouse_url)
    assert not again.run_requests and again.skip_reason


def test_pushes_request_one_scan_per_digest_and_are_taken_once(engine, warehouse_url) -> None:
    for event_id, tag in (("e1", "1.0"), ("e2", "latest")):
        event = {"id": event_id, "action": "push",
                 "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": DIGEST, "repository": "team/api", "tag": tag}}  # fmt: skip
        receive(engine, Delivery("registry", event_id, "push", f"team/api:{tag}", event))
    sources = DeliverySourcesResource(mode="sample", sample_end_date="2026-11-01")

    result = _tick(webhook_push_sensor, warehouse_url, sources=sources)

    [request] = result.run_requests or []
    assert request.run_key == f"scan:{DIGEST}"
    assert request.run_config["ops"][SCAN_JOB]["config"]["images"] == [
        f"registry.sample.invalid/team/api@{DIGEST}"
    ]
    assert {d["status"] for d in deliveries(engine, "registry")} == {"taken"}
    assert not _tick(webhook_push_sensor, warehouse_url, sources=sources).run_requests
