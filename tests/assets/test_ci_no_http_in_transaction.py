"""CI ingestion asks its servers with no warehouse transaction open (DESIGN 1b): every HTTP
request of `cicd/pipelines`, `cicd/pipeline_executions` and the `ci_history` job is sent
between transactions, and on SQLite another writer can write while the server answers.
Before, each source was read inside its write transaction (BEGIN IMMEDIATE on SQLite: the
write lock held for the whole download)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection, make_url

from tests.fakes.jenkins_server import FakeJenkins
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.definitions import build_definitions
from timbel_dagster.jobs.history import OP
from timbel_dagster.partitions import range_tags
from timbel_dagster.resources.jenkins.client import JenkinsHTTP
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ingestion import IngestionReject
from timbel_dagster.warehouse.schema.models import PipelineExecution

HOUR_MS = 3_600_000


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    now_ms = int(time.time() * 1000)
    server.add_job("shop/api/main", builds=3, first_timestamp=now_ms - 20 * HOUR_MS)
    server.add_job("shop/web/main", builds=2, first_timestamp=now_ms - 10 * HOUR_MS)
    server.add_build("shop/web/main", raw={"timestamp": "yesterday"})  # 3: a reject
    server.start()
    yield server
    server.stop()


class Watch:
    """Every request sent to Jenkins, with what was open in the warehouse at that moment."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connections: list[Connection] = []
        self.open_at_request: list[int] = []  # transactions open when each request was sent
        self.locked_at_request: list[str] = []  # a concurrent SQLite writer's failures

    def begun(self, connection: Connection) -> None:
        self.connections.append(connection)

    def check(self) -> None:
        self.open_at_request.append(sum(1 for c in self.connections if c.in_transaction()))
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite":
            other = sqlite3.connect(url.database, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # what a second writer does; no waiting
                other.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                self.locked_at_request.append(str(error))
            finally:
                other.close()


@pytest.fixture
def watch(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Watch]:
    watch = Watch(warehouse_url)
    engines = [get_engine(warehouse_url), get_engine(warehouse_url, read_only=True)]
    for engine in engines:
        event.listen(engine, "begin", watch.begun)
    send = JenkinsHTTP._send

    def checked_send(self, *args, **kwargs):
        watch.check()
        return send(self, *args, **kwargs)

    monkeypatch.setattr(JenkinsHTTP, "_send", checked_send)
    yield watch
    for engine in engines:  # the engines are cached for the process: leave them as found
        event.remove(engine, "begin", watch.begun)


def _resources(jenkins: FakeJenkins, warehouse_url: str) -> dict:
    jenkins_resource = JenkinsResource(
        url=jenkins.url, user=jenkins.user, token=jenkins.token, jobs=[], stages="all"
    )
    return {
        "warehouse": WarehouseResource(database_url=warehouse_url),
        "sources": DeliverySourcesResource(
            mode="live", systems=["jenkins"], jenkins=jenkins_resource
        ),
    }


def _stored(warehouse_url: str) -> tuple[int, int]:
    with get_engine(warehouse_url).connect() as connection:
        executions = len(connection.execute(select(PipelineExecution.id)).all())
        rejects = len(connection.execute(select(IngestionReject.id)).all())
    return executions, rejects


def _assert_between_transactions(watch: Watch) -> None:
    assert watch.open_at_request, "no request reached Jenkins"
    assert set(watch.open_at_request) == {0}, watch.open_at_request
    assert watch.locked_at_request == []


def test_the_assets_ask_jenkins_with_no_transaction_open(
    jenkins: FakeJenkins, warehouse_url: str, watch: Watch
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    result = dg.materialize(
        list(build_definitions().assets or []),
        instance=dg.DagsterInstance.ephemeral(),
        resources=_resources(jenkins, warehouse_url),
        selection=[
            dg.AssetKey(["cicd", "pipelines"]),
            dg.AssetKey(["cicd", "pipeline_executions"]),
            dg.AssetKey(["cicd", "stage_executions"]),
        ],
        tags=range_tags((today - dt.timedelta(days=2)).isoformat(), today.isoformat()),
    )
    assert result.success
    _assert_between_transactions(watch)
    assert _stored(warehouse_url) == (5, 1)  # read first, then all written (rejects too)
    metadata = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    executions = metadata["cicd/pipeline_executions"]
    assert executions["rows_written"].value == 5 and executions["rows_rejected"].value == 1
    # the executions' requests; the pipelines step asked for the job tree on its own
    assert 0 < executions["source_requests"].value < len(watch.open_at_request)


def test_the_history_job_asks_jenkins_with_no_transaction_open(
    jenkins: FakeJenkins, warehouse_url: str, watch: Watch
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    config = {
        "first_day": (today - dt.timedelta(days=2)).isoformat(),
        "last_day": today.isoformat(),
        "systems": ["jenkins"],
    }
    result = (
        build_definitions()
        .resolve_job_def("ci_history")
        .execute_in_process(
            run_config={"ops": {OP: {"config": config}}},
            instance=dg.DagsterInstance.ephemeral(),
            resources=_resources(jenkins, warehouse_url),
        )
    )
    assert result.success
    _assert_between_transactions(watch)
    report = result.output_for_node(OP)
    assert report["rejected"] == 1 and report["pipeline_executions"]["written"] == 5
    assert report["pipelines"]["offered"] == 2
    assert report["requests"] == len(watch.open_at_request)
    assert _stored(warehouse_url) == (5, 1)
