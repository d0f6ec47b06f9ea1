"""Reading a GitLab job trace from a byte on: ranged where the server allows, bounded always."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.fakes.gitlab_server import FakeGitLab, FakeJob
from timbel_dagster.resources.errors import SourceDataError
from timbel_dagster.resources.gitlab.client import GitLabHTTP
from timbel_dagster.resources.gitlab.source import GitLabSource

PROJECT = "commerce/checkout-web"
TRACE = b"".join(f"line {n:05d} of the job\n".encode() for n in range(100_000))  # 2.3 MB


@pytest.fixture
def served() -> Iterator[tuple[FakeGitLab, FakeJob, GitLabSource]]:
    fake = FakeGitLab()
    project_id = fake.add_project(PROJECT)
    job = fake.add_pipeline(project_id, dt.datetime(2026, 11, 1, tzinfo=dt.UTC)).jobs[0]
    job.trace += TRACE
    fake.start()
    http = GitLabHTTP(fake.url, fake.token, max_requests_per_second=10_000)
    yield fake, job, GitLabSource(http, [PROJECT])
    fake.stop()


@pytest.mark.parametrize("trace_ranges", ["never", "archived"])
@pytest.mark.parametrize("start", [0, 1, 1 << 20, len(TRACE) - 1, len(TRACE)])
def test_a_trace_from_any_byte_on(served, trace_ranges: str, start: int) -> None:
    fake, job, source = served
    fake.trace_ranges = trace_ranges
    with source.trace(PROJECT, job.id, start=start) as blocks:
        received = list(blocks)
    assert b"".join(received) == TRACE[start:]
    assert all(len(block) <= 1 << 20 for block in received)  # streamed, never whole
    [(_job, asked, status)] = fake.trace_requests
    assert asked == (f"bytes={start}-" if start else None)
    if trace_ranges == "never" or not start:
        assert status == 200
    else:
        assert status == (416 if start == len(TRACE) else 206)


def test_a_partial_answer_without_its_range_is_refused(served) -> None:
    fake, job, source = served
    fake.fail_next(206, b"line 00001", "text/plain")
    with pytest.raises(SourceDataError) as raised, source.trace(PROJECT, job.id, start=100):
        pass
    assert str(raised.value) == (
        f"gitlab {PROJECT} job {job.id}: field 'Content-Range': 206 without a byte range"
    )
