"""`webhook_build_sensor` and `webhook_push_sensor`: pending deliveries become the runs the
polling sensors would request, each delivery is taken once."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from sqlalchemy import select

from tests.api.webhooks.conftest import deliveries, fixture
from timbel_dagster.assets.cicd.executions import CI_SYSTEMS_TAG
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.partitions import RANGE_END_TAG, RANGE_START_TAG
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.registry import SCAN_JOB
from timbel_dagster.sensors.webhooks import (
    contiguous_spans,
    webhook_build_sensor,
    webhook_push_sensor,
)
from timbel_dagster.warehouse.deliveries import Delivery, receive
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.identity import WebhookDelivery

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
    spans: dict[str, list[tuple[str, str]]] = {}
    for request in by_job["ci_ingestion"]:
        span = (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG])
        spans.setdefault(request.tags[CI_SYSTEMS_TAG], []).append(span)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    # The day each build started and the day it was received, not the years between.
    assert spans == {
        "gitlab": [("2016-08-12", "2016-08-12"), (today, today)],
        "jenkins": [("2024-12-04", "2024-12-04"), (today, today)],
    }
    # The running pipeline is followed under the build sensor's own run key.
    assert [r.run_key for r in by_job["follow_build"]] == [
        "follow-gitlab-gitlab-org/gitlab-test-31"
    ]
    taken = deliveries(engine, "gitlab") + deliveries(engine, "jenkins")
    assert {d["status"] for d in taken} == {"taken"}
    # Each delivery is taken by the run of the day its build started.
    with engine.connect() as connection:
        run_keys = set(connection.execute(select(WebhookDelivery.run_key)).scalars())
    assert {k[-10:] for k in run_keys} == {"2016-08-12", "2024-12-04"}

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


@pytest.mark.parametrize(
    ("days", "spans"),
    [
        (set(), []),
        ({"2026-12-01"}, [("2026-12-01", "2026-12-01")]),
        ({"2026-11-30", "2026-12-01", "2026-12-02"}, [("2026-11-30", "2026-12-02")]),
        ({"2016-08-12", "2026-12-05", "2026-12-04"},
         [("2016-08-12", "2016-08-12"), ("2026-12-04", "2026-12-05")]),
        ({"2024-02-28", "2024-03-01", "2024-02-29"}, [("2024-02-28", "2024-03-01")]),
    ],
)  # fmt: skip
def test_days_become_spans_of_consecutive_days(days, spans) -> None:
    assert contiguous_spans(days) == spans
