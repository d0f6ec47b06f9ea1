"""`gitlab_pipeline_sensor` against the fake GitLab, with the runs it asks for executed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from tests.fakes.gitlab_server import FakeGitLab
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.builds import gitlab_pipeline_sensor
from timbel_dagster.sensors.marks import BuildCursor

defs = build_definitions()  # the code location, partitions from the default start


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    server = FakeGitLab()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=20)
    server.add_project("commerce/checkout-web", pipelines=12, first=start)
    server.add_project("platform/auth-gateway", pipelines=4, first=start)
    server.start()
    yield server
    server.stop()


def test_batches_and_marks(gitlab: FakeGitLab, warehouse_url: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    resource = GitLabResource(
        url=gitlab.url,
        token=gitlab.token,
        projects=["commerce/checkout-web", "platform/auth-gateway"],
        max_requests_per_second=1000,
    )
    warehouse = WarehouseResource(database_url=warehouse_url)
    cursor: list[str | None] = [None]

    def tick() -> dg.SensorResult:
        result = gitlab_pipeline_sensor(
            dg.build_sensor_context(
                cursor=cursor[0],
                instance=instance,
                resources={"gitlab": resource, "warehouse": warehouse},
            )
        )
        cursor[0] = result.cursor
        return result

    before = len(gitlab.requests)
    [request] = tick().run_requests
    assert len(gitlab.requests) - before == 2  # one per project, configured by path
    assert request.tags["timbel/ci_systems"] == "gitlab"
    result = dg.materialize(
        list(defs.assets or []),
        instance=instance,
        resources={
            "warehouse": warehouse,
            "sources": DeliverySourcesResource(mode="live", gitlab=resource),
        },
        selection=list(defs.resolve_job_def("ci_ingestion").asset_layer.executable_asset_keys),
        tags=dict(request.tags) | {"dagster/run_key": request.run_key},
    )
    assert result.success
    assert not tick().run_requests
    assert BuildCursor.from_json(cursor[0]).marks == {
        "commerce/checkout-web": 1012,
        "platform/auth-gateway": 1016,
    }
    gitlab.add_pipeline(10, dt.datetime.now(dt.UTC))
    [again] = tick().run_requests
    assert again.run_key != request.run_key
