"""Following a log costs bounded memory, storage and requests (issue #13, finding 5b).

A never-ending log stops at the execution's cap with one marker line and the follower stops
polling; GitLab traces are asked for from the first byte not received yet (`Range`), and a
server that ignores the range (GitLab's API does) still yields every line once.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.fakes.gitlab_server import FakeGitLab, FakePipeline
from tests.fakes.jenkins_server import FakeJenkins
from timbel_dagster.jobs.follow import follow_gitlab_logs, follow_jenkins_log
from timbel_dagster.jobs.record import store_build
from timbel_dagster.resources.gitlab.source import GitLabResource, GitLabSource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import ExecutionLog, ExecutionLogChunk
from timbel_dagster.warehouse.store.logs import read_log

JOB = "shop/api/main"
PROJECT = "commerce/checkout-web"


def _lines(start: int, count: int) -> bytes:
    return b"".join(
        f"[{n:06d}] step output {'x' * (n % 40)}\n".encode() for n in range(start, start + count)
    )


class Endless:
    """Each poll's sleep adds more log; the build never ends."""

    def __init__(self, grow, limit: int = 200) -> None:
        self.grow, self.limit, self.sleeps = grow, limit, 0

    def sleep(self, _seconds: float) -> None:
        self.sleeps += 1
        assert self.sleeps < self.limit, "still following a log past the cap"
        self.grow(self.sleeps)


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    server.add_job(JOB, builds=1, first_timestamp=int(time.time() * 1000) - 3_600_000)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _jenkins_execution(url: str, server: FakeJenkins, number: int):
    source = JenkinsResource(
        url=server.url, user=server.user, token=server.token, jobs=[JOB], retry_backoff_seconds=0
    ).source()
    execution = source.execution(JOB, number, read_stages=False)
    return source, uuid.UUID(
        store_build(get_engine(url), "jenkins", source.pipeline(JOB), execution, "t", "follow")
    )


def _streams(url: str, execution_id: uuid.UUID) -> dict[str, tuple[int, bool]]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(
            select(ExecutionLog.stream, ExecutionLog.size, ExecutionLog.complete).where(
                ExecutionLog.execution_id == execution_id
            )
        )
        return {stream: (size, complete) for stream, size, complete in rows}


def _markers(url: str, execution_id: uuid.UUID) -> dict[str, str]:
    table = ExecutionLogChunk.__table__
    with get_engine(url).connect() as connection:
        rows = connection.execute(
            select(table.c.stream, table.c.content).where(
                table.c.execution_id == execution_id, table.c.length == 0
            )
        )
        return dict(rows.all())


@pytest.mark.timeout(120)
def test_a_never_ending_jenkins_log_stops_at_the_configured_cap(
    jenkins: FakeJenkins, warehouse_url: str, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("TIMBEL_LOG_MAX_BYTES_PER_EXECUTION", "50000")
    build = jenkins.add_build(JOB, building=True, result=None)
    build.log += _lines(0, 100)
    endless = Endless(lambda n: build.log.extend(_lines(n * 300, 300)))
    source, execution_id = _jenkins_execution(warehouse_url, jenkins, build.number)
    emitted: list[str] = []
    report = follow_jenkins_log(
        source.api,
        get_engine(warehouse_url),
        execution_id,
        JOB,
        build.number,
        emitted.append,
        sleep=endless.sleep,
        chunk_bytes=4096,
    )
    url = f"{jenkins.url.rstrip('/')}/job/shop/job/api/job/main/{build.number}/console"
    marker = f"[timbel] truncated: log exceeded 50000 bytes; the rest is on the CI server at {url}"
    assert report.bytes_stored == 50_000 and report.truncated
    assert _streams(warehouse_url, execution_id) == {"": (50_000, True)}
    with get_engine(warehouse_url).connect() as connection:
        stored = "".join(read_log(connection, execution_id))
    assert stored == bytes(build.log[:50_000]).decode() + "\n" + marker + "\n"
    [last] = [t for t in emitted if "truncated" in t]  # the run log shows the marker too
    assert last.endswith("\n" + marker + "\n") and emitted[-1] == last
    # reading stopped at the read that crossed the cap (a read that brings bytes is followed
    # by another at once, one that brings none by a sleep)
    reads = [q for _m, p, q in jenkins.requests if p.endswith("progressiveText")]
    assert endless.sleeps < 10 and len(reads) <= 2 * endless.sleeps + 1
    assert len(build.log) > 50_000

    # a follower started again later (a new run) reads nothing more
    again = follow_jenkins_log(
        source.api,
        get_engine(warehouse_url),
        execution_id,
        JOB,
        build.number,
        emitted.append,
        sleep=endless.sleep,
    )
    assert again.bytes_stored == 50_000 and not again.truncated  # nothing read this time
    assert [q for _m, p, q in jenkins.requests if p.endswith("progressiveText")] == reads


def _gitlab(trace_ranges: str) -> tuple[FakeGitLab, FakePipeline]:
    gitlab = FakeGitLab()
    gitlab.trace_ranges = trace_ranges
    project_id = gitlab.add_project(PROJECT)
    pipeline = gitlab.add_pipeline(project_id, dt.datetime.now(dt.UTC), status="running")
    return gitlab, pipeline


def _gitlab_execution(url: str, gitlab: FakeGitLab, pipeline: FakePipeline):
    source = GitLabResource(
        url=gitlab.url, token=gitlab.token, projects=[PROJECT], max_requests_per_second=1000
    ).source()
    record = source.pipeline(PROJECT)
    execution = source.execution(PROJECT, pipeline.id)
    return source, uuid.UUID(
        store_build(get_engine(url), "gitlab", record, execution, "tester", "build.follow")
    )


def _follow(source: GitLabSource, url: str, execution_id, pipeline, sleep, **kw):
    return follow_gitlab_logs(
        source,
        get_engine(url),
        execution_id,
        PROJECT,
        pipeline.id,
        lambda _t: None,
        sleep=sleep,
        **kw,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("trace_ranges", ["never", "archived"])
def test_gitlab_traces_are_asked_for_from_the_first_byte_not_received(
    warehouse_url: str, trace_ranges: str
) -> None:
    """The second and later reads of a trace send `Range: bytes=<received>-`. GitLab's API
    answers 200 with the whole trace anyway ("never"); a server that serves finished traces
    as files answers 206, or 416 when nothing follows ("archived"). No line is stored twice."""
    gitlab, pipeline = _gitlab(trace_ranges)
    first = {job.id: f"$ make {job.name}\n".encode() + _lines(0, 50) for job in pipeline.jobs}
    for job in pipeline.jobs:
        job.trace += first[job.id]
    quiet = pipeline.jobs[-1]  # ends without another byte: the last ask is past the end

    def finish(_seconds: float) -> None:
        for job in pipeline.jobs:
            if job is not quiet:
                job.trace += _lines(50, 20) + b"Job succeeded\n"
            job.status = "success"
        pipeline.status = "success"

    gitlab.start()
    try:
        source, execution_id = _gitlab_execution(warehouse_url, gitlab, pipeline)
        report = _follow(source, warehouse_url, execution_id, pipeline, finish)
    finally:
        gitlab.stop()
    assert report.streams == len(pipeline.jobs) and not report.truncated
    with get_engine(warehouse_url).connect() as connection:
        for job in pipeline.jobs:
            assert "".join(read_log(connection, execution_id, str(job.id))).encode() == job.trace
    for job in pipeline.jobs:
        asked = [
            (ranged, status) for job_id, ranged, status in gitlab.trace_requests if job_id == job.id
        ]
        assert asked[0] == (None, 200)
        assert {ranged for ranged, _status in asked[1:]} == {f"bytes={len(first[job.id])}-"}
        statuses = [status for _ranged, status in asked]
        if trace_ranges == "never":
            assert set(statuses) == {200}
        else:  # whole while running, ranged once the job has finished
            assert statuses[-1] == (416 if job is quiet else 206)


@pytest.mark.timeout(120)
def test_a_gitlab_pipeline_stops_at_the_execution_cap(warehouse_url: str) -> None:
    """The cap is the execution's, shared by its jobs' traces; past it every open trace
    ends with the marker naming the job's page, and nothing more is asked for."""
    gitlab, pipeline = _gitlab("never")
    for job in pipeline.jobs:
        job.trace += _lines(0, 20)

    def grow(n: int) -> None:
        for job in pipeline.jobs:
            job.trace += _lines(n * 200, 200)

    endless = Endless(grow)
    gitlab.start()
    try:
        source, execution_id = _gitlab_execution(warehouse_url, gitlab, pipeline)
        report = _follow(
            source, warehouse_url, execution_id, pipeline, endless.sleep, max_bytes=30_000
        )
        asked = len(gitlab.trace_requests)
    finally:
        gitlab.stop()
    streams = _streams(warehouse_url, execution_id)
    assert report.bytes_stored == sum(size for size, _complete in streams.values()) == 30_000
    assert report.truncated
    assert set(streams) == {str(job.id) for job in pipeline.jobs}
    assert all(complete for _size, complete in streams.values())
    markers = _markers(warehouse_url, execution_id)
    for job in pipeline.jobs:
        page = f"{gitlab.url}/{PROJECT}/-/jobs/{job.id}"
        assert markers[str(job.id)].strip() == (
            f"[timbel] truncated: log exceeded 30000 bytes; the rest is on the CI server at {page}"
        )
    assert endless.sleeps < 10 and asked <= (endless.sleeps + 2) * len(pipeline.jobs)
