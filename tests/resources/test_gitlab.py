"""The GitLab client against the loopback fake that enforces GitLab's API rules."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from tests.fakes.gitlab_server import FakeGitLab
from timbel_dagster.records.delivery import ExecutionRecord, RejectRecord
from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.resources.gitlab.client import GitLabHTTP, RateCappedSession, project_ref
from timbel_dagster.resources.gitlab.source import GitLabSource

NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DEC = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    server = FakeGitLab()
    server.add_project("commerce/checkout-web", pipelines=250, first=NOV)
    server.add_project("platform/auth-gateway", pipelines=3, first=NOV)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """python-gitlab's back-off sleeps, recorded instead of slept."""
    import gitlab.utils

    recorded: list[float] = []
    monkeypatch.setattr(gitlab.utils.time, "sleep", recorded.append)
    return recorded


def source_for(
    server: FakeGitLab, projects: list[str] | None = None, token: str | None = None
) -> GitLabSource:
    http = GitLabHTTP(server.url, token or server.token, max_requests_per_second=10_000)
    return GitLabSource(http, projects or ["commerce/checkout-web", "11"])


@pytest.mark.parametrize(("given", "ref"), [("42", "42"), ("group/sub/app", "group%2Fsub%2Fapp")])
def test_project_ref(given: str, ref: str) -> None:
    assert project_ref(given) == ref


def test_projects_by_path_or_id(fake: FakeGitLab) -> None:
    pipelines = source_for(fake).pipelines()
    assert [(p.name, p.service, p.default_branch) for p in pipelines] == [
        ("commerce/checkout-web", "checkout-web", "main"),
        ("platform/auth-gateway", "auth-gateway", "main"),
    ]


def test_window_reads_pipelines_and_jobs_with_few_requests(fake: FakeGitLab) -> None:
    source = source_for(fake)
    executions = list(source.executions(NOV, DEC))
    assert len(executions) == 253
    first = next(e for e in executions if e.external_id == "1001")
    assert (first.status, first.branch, first.triggered_by) == ("success", "main", "hana.jung")
    assert first.duration == 550.0 and first.queue_seconds == 1.5
    assert [(s.name, s.parent_name, s.position) for s in first.stages] == [
        ("compile", "build", 0),
        ("unit-tests", "test", 1),
        ("integration-tests", "test", 1),
        ("deploy-review", "deploy", 2),
    ]
    failed = next(e for e in executions if e.external_id == "1006")
    assert failed.status == "failed" and failed.error_message == "job(s) failed: integration-tests"
    # 2 projects + 3 pipeline pages + 10 keyset job pages + 1 + 1
    assert source.requests_made == 17
    job_queries = [parse_qs(q) for _, p, q in fake.requests if p.endswith("/jobs")]
    assert all(q["pagination"] == ["keyset"] and q["per_page"] == ["100"] for q in job_queries)
    assert sum("cursor" in q for q in job_queries) == 9


def test_only_the_window_and_not_the_final(fake: FakeGitLab) -> None:
    source = source_for(fake, ["commerce/checkout-web"])
    since, until = NOV + dt.timedelta(hours=240), NOV + dt.timedelta(hours=250)
    final = frozenset({("commerce/checkout-web", "1241"), ("commerce/checkout-web", "1242")})
    executions = list(source.executions(since, until, final))
    assert [e.sequence for e in executions] == list(range(1243, 1251))
    assert all(len(e.stages) == 4 for e in executions)


def test_retried_job_counts_as_a_second_attempt(fake: FakeGitLab) -> None:
    pipeline = fake.pipelines[10][-1]
    fake.retry_job(pipeline, "unit-tests")
    source = source_for(fake, ["commerce/checkout-web"])
    [execution] = [e for e in source.executions(NOV, DEC) if e.sequence == pipeline.id]
    assert [(s.name, s.attempt) for s in execution.stages if s.name == "unit-tests"] == [
        ("unit-tests", 1),
        ("unit-tests", 2),
    ]


def test_429_waits_as_long_as_retry_after_says(fake: FakeGitLab, waits: list[float]) -> None:
    fake.rate_limit_every, fake.retry_after = 4, "3"
    executions = list(source_for(fake).executions(NOV, DEC))
    assert len(executions) == 253
    assert waits and set(waits) == {3}


def test_rate_cap_spaces_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 100.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    import timbel_dagster.resources.gitlab.client as client

    monkeypatch.setattr(client.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(client.time, "sleep", sleep)
    monkeypatch.setattr(client.requests.Session, "request", lambda *a, **k: None)
    session = RateCappedSession(per_second=4)
    for _ in range(5):
        session.request("GET", "http://127.0.0.1:1/")
    assert slept == pytest.approx([0.25, 0.25, 0.25, 0.25])
    assert session.requests_made == 5


def test_bad_token_is_not_retried(fake: FakeGitLab) -> None:
    source = source_for(fake, token="nope")
    with pytest.raises(
        SourceAuthError,
        match="gitlab project commerce/checkout-web: access "
        r"refused \(401\); check GITLAB_TOKEN",
    ):
        source.pipelines()
    assert len(fake.requests) == 1


def test_server_errors_are_retried_then_reported(fake: FakeGitLab, waits: list[float]) -> None:
    for _ in range(20):
        fake.fail_next(503, b'{"message": "503 Service Unavailable"}', "application/json")
    with pytest.raises(TransientSourceError, match="server error 503 after retries"):
        source_for(fake).pipelines()
    assert len(fake.requests) == 6 and len(waits) == 5


def test_unknown_project_is_named(fake: FakeGitLab) -> None:
    with pytest.raises(SourceNotFoundError, match="gitlab project nope/nope: not found"):
        source_for(fake, ["nope/nope"]).pipelines()


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        (
            200,
            b"<html><title>GitLab is not responding (502)</title></html>",
            "text/html",
            "expected JSON, got text/html",
        ),
        (200, b"", "text/plain", "the answer was empty"),
        (200, b'{"id": 3, "path_with', "application/json", "malformed JSON"),
        (200, b'{"id": 3}', "application/json", "field 'path_with_namespace': missing"),
    ],
)
def test_bad_payloads_raise_errors_naming_the_field(
    fake: FakeGitLab, status: int, body: bytes, content_type: str, message: str
) -> None:
    fake.fail_next(status, body, content_type)
    with pytest.raises(SourceDataError, match=re.escape(message)):
        source_for(fake).pipelines()


def test_a_job_with_a_wrong_type_is_rejected_naming_the_job_and_field(fake: FakeGitLab) -> None:
    source = source_for(fake, ["platform/auth-gateway"])
    source.pipelines()
    original = fake.job_json

    def broken(pipeline, job):
        data = original(pipeline, job)
        if job.name == "compile":
            data["duration"] = "four minutes"
        return data

    fake.job_json = broken  # type: ignore[method-assign]
    read = list(source.executions(NOV, DEC))
    rejects = [r for r in read if isinstance(r, RejectRecord)]
    executions = [r for r in read if isinstance(r, ExecutionRecord)]
    assert len(rejects) == 3 and len(executions) == 3
    for reject in rejects:
        assert reject.kind == "job" and reject.pipeline == "platform/auth-gateway"
        assert reject.sequence is None and reject.payload["duration"] == "four minutes"
        assert re.fullmatch(
            rf"gitlab platform/auth-gateway job {reject.key}: field "
            r"'duration': expected int or float, got str 'four minutes'",
            reject.reason,
        )
    for execution in executions:  # stored with the jobs that parsed
        assert [s.name for s in execution.stages] == [
            "unit-tests",
            "integration-tests",
            "deploy-review",
        ]


def test_newest_pipelines_cost_one_request_per_project(fake: FakeGitLab) -> None:
    source = source_for(fake)
    source.pipelines()
    before = len(fake.requests)
    assert source.newest_pipelines() == {
        "commerce/checkout-web": (1250, "success"),
        "platform/auth-gateway": (1253, "success"),
    }
    assert len(fake.requests) - before == 2


def test_servers_without_keyset_for_jobs_get_offset_pages(fake: FakeGitLab) -> None:
    fake.keyset_jobs = False
    source = source_for(fake, ["commerce/checkout-web"])
    executions = list(source.executions(NOV, DEC))
    assert len(executions) == 250 and all(len(e.stages) == 4 for e in executions)
    job_queries = [parse_qs(q) for _, p, q in fake.requests if p.endswith("/jobs")]
    assert job_queries[0]["pagination"] == ["keyset"]  # tried once, then offset pages
    assert all("pagination" not in q for q in job_queries[1:]) and len(job_queries) == 11
