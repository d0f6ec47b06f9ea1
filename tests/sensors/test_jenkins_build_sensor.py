"""`jenkins_build_sensor` ticks against the fake Jenkins, with the runs it asks for executed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from tests.fakes.jenkins_server import FakeJenkins
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.builds import jenkins_build_sensor
from timbel_dagster.sensors.marks import BuildCursor

defs = build_definitions()  # the code location, partitions from the default start

HOUR_MS = 3_600_000


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    now_ms = int(time.time() * 1000)
    server.add_job(
        "shop/api/main", builds=12, first_timestamp=now_ms - 20 * HOUR_MS, every_ms=HOUR_MS
    )
    server.add_job(
        "shop/web/main", builds=5, first_timestamp=now_ms - 10 * HOUR_MS, every_ms=HOUR_MS
    )
    server.start()
    yield server
    server.stop()


class Harness:
    """Ticks the sensor and executes the runs it requests, like the daemon would."""

    def __init__(self, server: FakeJenkins, url: str) -> None:
        self.server = server
        self.instance = dg.DagsterInstance.ephemeral()
        self.jenkins = JenkinsResource(
            url=server.url, user=server.user, token=server.token, jobs=[]
        )
        self.warehouse = WarehouseResource(database_url=url)
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(
            cursor=self.cursor,
            instance=self.instance,
            resources={"jenkins": self.jenkins, "warehouse": self.warehouse},
        )
        result = jenkins_build_sensor(context)
        if isinstance(result, dg.SensorResult) and result.cursor is not None:
            self.cursor = result.cursor
        return result

    def execute(self, request: dg.RunRequest) -> bool:
        sources = DeliverySourcesResource(mode="live", jenkins=self.jenkins)
        result = dg.materialize(
            list(defs.assets or []),
            instance=self.instance,
            raise_on_error=False,
            resources={"warehouse": self.warehouse, "sources": sources},
            selection=list(defs.resolve_job_def("ci_ingestion").asset_layer.executable_asset_keys),
            tags=dict(request.tags) | {"dagster/run_key": request.run_key},
        )
        return result.success

    @property
    def marks(self) -> dict[str, int]:
        return BuildCursor.from_json(self.cursor).marks


def _request(result: dg.SensorResult | dg.SkipReason) -> dg.RunRequest:
    assert isinstance(result, dg.SensorResult), result
    [request] = result.run_requests
    return request


def test_new_builds_then_quiet_then_more(jenkins: FakeJenkins, warehouse_url: str) -> None:
    harness = Harness(jenkins, warehouse_url)
    first = _request(harness.tick())
    assert first.tags["timbel/ci_systems"] == "jenkins"
    assert (
        first.tags["dagster/asset_partition_range_start"]
        <= first.tags["dagster/asset_partition_range_end"]
    )
    # while the batch's run has not happened, the sensor waits instead of piling up runs
    waiting = harness.tick()
    assert "waiting for run" in (waiting.skip_reason.skip_message or "")
    assert harness.execute(first)

    quiet = harness.tick()
    assert isinstance(quiet, dg.SensorResult) and not quiet.run_requests
    assert harness.marks == {"shop/api/main": 12, "shop/web/main": 5}
    assert "no new jenkins builds" in quiet.skip_reason.skip_message

    for _ in range(3):
        jenkins.add_build("shop/web/main")
    second = _request(harness.tick())
    assert second.run_key != first.run_key
    pending = json.loads(harness.cursor)["pending"]
    assert pending["upto"] == {"shop/web/main": 8}
    assert harness.execute(second)
    harness.tick()
    assert harness.marks == {"shop/api/main": 12, "shop/web/main": 8}


def test_a_failed_run_moves_no_mark_and_is_asked_again(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    harness = Harness(jenkins, warehouse_url)
    first = _request(harness.tick())
    jenkins.fail_next(
        1,
        status=200,
        body=b"<html><title>Oops</title></html>",
        content_type="text/html",
        path_contains="/job/shop/job/web/",
    )
    assert not harness.execute(first)
    again = _request(harness.tick())
    assert harness.marks == {}  # the failed batch stored nothing it could confirm
    assert again.run_key != first.run_key
    assert harness.execute(again)
    harness.tick()
    assert harness.marks == {"shop/api/main": 12, "shop/web/main": 5}


def test_a_running_build_holds_its_job_mark_below_it(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    running = jenkins.add_build("shop/web/main", building=True, result=None)
    jenkins.add_build("shop/web/main")
    harness = Harness(jenkins, warehouse_url)
    assert harness.execute(_request(harness.tick()))
    follow_up = harness.tick()
    assert harness.marks["shop/web/main"] == running.number - 1
    # the running build is asked for again in the next batch
    assert _request(follow_up).run_key.startswith("jenkins-builds-2-")


def test_a_tick_costs_one_request(jenkins: FakeJenkins, warehouse_url: str) -> None:
    harness = Harness(jenkins, warehouse_url)
    harness.tick()
    assert len(jenkins.requests) == 1


def test_unconfigured_jenkins_is_skipped_with_the_reason(warehouse_url: str) -> None:
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "jenkins": JenkinsResource(url=None),
            "warehouse": WarehouseResource(database_url=warehouse_url),
        },
    )
    result = jenkins_build_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert "JENKINS_URL" in (result.skip_message or "")


def test_a_build_that_starts_gets_a_follow_run(jenkins: FakeJenkins, warehouse_url: str) -> None:
    running = jenkins.add_build("shop/web/main", building=True, result=None)
    harness = Harness(jenkins, warehouse_url)
    result = harness.tick()
    assert isinstance(result, dg.SensorResult)
    follows = [r for r in result.run_requests if r.job_name == "follow_build"]
    [follow] = follows
    assert follow.run_key == f"follow-jenkins-shop/web/main-{running.number}"
    assert follow.run_config["ops"]["follow"]["config"] == {
        "system": "jenkins",
        "pipeline": "shop/web/main",
        "build": running.number,
    }
    # the same build on the next tick asks again under the same key: Dagster runs it once
    again = [r for r in harness.tick().run_requests if r.job_name == "follow_build"]
    assert [r.run_key for r in again] == [follow.run_key]


def test_rejected_and_unknown_builds_are_passed_only_once_stored_or_rejected(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    """Marks pass a build the batch stored (an unknown result included) or rejected, and
    nothing else: the newest build being unparsable does not make the sensor ask forever."""
    from sqlalchemy import select

    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.ingestion import IngestionReject
    from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution

    jenkins.add_build("shop/web/main", raw={"timestamp": "not a time"})  # 6: rejected
    jenkins.add_build("shop/web/main", result="CUSTOM_RESULT")  # 7: stored as unknown
    jenkins.add_build("shop/web/main")  # 8
    jenkins.add_build("shop/web/main", raw={"duration": "long"})  # 9, the newest: rejected
    harness = Harness(jenkins, warehouse_url)
    assert harness.execute(_request(harness.tick()))
    quiet = harness.tick()
    assert isinstance(quiet, dg.SensorResult) and not quiet.run_requests
    assert harness.marks == {"shop/api/main": 12, "shop/web/main": 9}
    with get_engine(warehouse_url).connect() as connection:
        stored = connection.execute(
            select(PipelineExecution.sequence, PipelineExecution.status)
            .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
            .where(Pipeline.name == "shop/web/main")
            .order_by(PipelineExecution.sequence)
        ).all()
        rejected = connection.execute(
            select(IngestionReject.kind, IngestionReject.key, IngestionReject.times_seen)
            .where(IngestionReject.pipeline == "shop/web/main")
            .order_by(IngestionReject.sequence)
        ).all()
    assert [s for s, _ in stored] == [1, 2, 3, 4, 5, 7, 8]
    assert dict(stored)[7] == "unknown"
    assert rejected == [("build", "6", 1), ("build", "9", 1)]


def test_a_build_without_a_result_holds_the_mark(jenkins: FakeJenkins, warehouse_url: str) -> None:
    """Null `result` and `building` (a build Jenkins has not finished writing) is stored as
    pending, not finished: the mark stays below it and the build is asked for again."""
    jenkins.add_build("shop/web/main", raw={"result": None, "building": None})  # 6: pending
    jenkins.add_build("shop/web/main")  # 7
    harness = Harness(jenkins, warehouse_url)
    assert harness.execute(_request(harness.tick()))
    again = harness.tick()
    assert harness.marks["shop/web/main"] == 5
    assert _request(again).run_key.startswith("jenkins-builds-2-")
