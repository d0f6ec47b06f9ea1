"""`gitlab_pipeline_sensor`'s marks pass a pipeline only once it is stored finished or kept in
`ingestion_rejects`: an unparsable newest pipeline does not make the sensor ask forever, and a
pipeline of unknown status that is still running holds the mark below it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from tests.fakes.gitlab_server import FakeGitLab
from timbel_dagster import definitions as code_location
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sensors.builds import gitlab_pipeline_sensor
from timbel_dagster.sensors.marks import BuildCursor


def code_location_defs() -> dg.Definitions:
    # the code location as a value (`defs`), or built by a function where its partitions'
    # start is a setting (`build_definitions`, issue 12 item 2)
    build = getattr(code_location, "build_definitions", None)
    return build() if build else code_location.defs


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    server = FakeGitLab()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=10)
    server.add_project("commerce/checkout-web", pipelines=3, first=start)
    server.start()
    yield server
    server.stop()


class Harness:
    def __init__(self, server: FakeGitLab, url: str) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.gitlab = GitLabResource(
            url=server.url,
            token=server.token,
            projects=["commerce/checkout-web"],
            max_requests_per_second=1000,
        )
        self.warehouse = WarehouseResource(database_url=url)
        self.cursor: str | None = None
        self.defs = code_location_defs()

    def tick(self) -> dg.SensorResult:
        result = gitlab_pipeline_sensor(
            dg.build_sensor_context(
                cursor=self.cursor,
                instance=self.instance,
                resources={"gitlab": self.gitlab, "warehouse": self.warehouse},
            )
        )
        self.cursor = result.cursor
        return result

    def execute(self, request: dg.RunRequest) -> bool:
        return dg.materialize(
            list(self.defs.assets or []),
            instance=self.instance,
            resources={
                "warehouse": self.warehouse,
                "sources": DeliverySourcesResource(mode="live", gitlab=self.gitlab),
            },
            selection=list(
                self.defs.resolve_job_def("ci_ingestion").asset_layer.executable_asset_keys
            ),
            tags=dict(request.tags) | {"dagster/run_key": request.run_key},
        ).success

    @property
    def marks(self) -> dict[str, int]:
        return BuildCursor.from_json(self.cursor).marks


def test_a_rejected_newest_pipeline_is_passed(gitlab: FakeGitLab, warehouse_url: str) -> None:
    newest = gitlab.add_pipeline(10, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    newest.raw = {"sha": 123}  # cannot be parsed: rejected
    harness = Harness(gitlab, warehouse_url)
    [request] = harness.tick().run_requests
    assert harness.execute(request)
    quiet = harness.tick()
    assert not quiet.run_requests
    assert harness.marks == {"commerce/checkout-web": newest.id}


def test_an_unknown_status_still_running_holds_the_mark(
    gitlab: FakeGitLab, warehouse_url: str
) -> None:
    stored_before = gitlab.pipelines[10][-1].id
    odd = gitlab.add_pipeline(10, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), status="running")
    odd.status = "waiting_for_a_new_thing"  # a status GitLab added; its jobs still run
    gitlab.add_pipeline(10, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
    harness = Harness(gitlab, warehouse_url)
    [request] = harness.tick().run_requests
    assert harness.execute(request)
    again = harness.tick()
    assert harness.marks == {"commerce/checkout-web": stored_before}
    assert [r.run_key for r in again.run_requests if r.job_name != "follow_build"]
