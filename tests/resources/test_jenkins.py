"""The Jenkins client against the loopback fake that enforces Jenkins' API rules."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from tests.fakes.jenkins_server import FakeJenkins
from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord, RejectRecord
from timbel_dagster.resources.errors import (
    SourceAuthError,
    SourceDataError,
    SourceNotFoundError,
    TransientSourceError,
)
from timbel_dagster.resources.jenkins.api import JenkinsAPI
from timbel_dagster.resources.jenkins.client import JenkinsHTTP, job_path
from timbel_dagster.resources.jenkins.source import JenkinsSource


@pytest.fixture
def fake() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    server.add_job("payments/payments-api/main", builds=250)
    server.add_job("payments/payments-api/feature-x", builds=3)
    server.add_job("a/b/c/d/deep-job", builds=2)
    server.add_job("solo", builds=1)
    server.start()
    yield server
    server.stop()


def api_for(server: FakeJenkins, token: str = "api-token-123") -> JenkinsAPI:
    return JenkinsAPI(
        JenkinsHTTP(server.url, "timbel", token, timeout=5, retries=3, sleep=lambda _seconds: None)
    )


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("solo", "job/solo"),
        ("team/api/main", "job/team/job/api/job/main"),
        ("feature/a b", "job/feature/job/a%20b"),
    ],
)
def test_job_path(name: str, path: str) -> None:
    assert job_path(name) == path


def test_jobs_walk_folders_in_as_few_requests_as_possible(fake: FakeJenkins) -> None:
    api = api_for(fake)
    jobs = api.jobs([])
    assert [j.full_name for j in jobs] == [
        "a/b/c/d/deep-job",
        "payments/payments-api/feature-x",
        "payments/payments-api/main",
        "solo",
    ]
    assert {j.full_name: j.last_build for j in jobs}["payments/payments-api/main"] == 250
    # one tree query reaches three levels; only the deeper folder costs a second request
    assert api.http.requests_made == 2
    assert all("tree=" in query for _, _, query in fake.requests)


def test_configured_roots_may_be_folders_or_jobs(fake: FakeJenkins) -> None:
    jobs = api_for(fake).jobs(["payments", "solo"])
    assert [j.full_name for j in jobs] == [
        "payments/payments-api/feature-x",
        "payments/payments-api/main",
        "solo",
    ]


def test_an_unparsable_job_entry_is_rejected_and_the_other_jobs_kept(fake: FakeJenkins) -> None:
    original = fake.job_json

    def odd(full_name: str):
        data = original(full_name)
        if full_name == "payments/payments-api/feature-x":
            data["lastBuild"] = {"number": "three"}
        if full_name == "solo":
            data["url"] = None
        return data

    fake.job_json = odd  # type: ignore[method-assign]
    source = JenkinsSource(api_for(fake), [])
    records = source.pipelines()
    assert [r.name for r in records if isinstance(r, PipelineRecord)] == [
        "a/b/c/d/deep-job",
        "payments/payments-api/main",
    ]
    assert [
        (r.kind, r.pipeline, r.key, r.reason) for r in records if isinstance(r, RejectRecord)
    ] == [
        (
            "pipeline",
            "payments/payments-api/feature-x",
            "payments/payments-api/feature-x",
            "jenkins payments/payments-api/feature-x: field 'lastBuild.number': expected int, "
            "got str 'three'",
        ),
        ("pipeline", "solo", "solo", "jenkins job list: field 'jobs[2].url': missing"),
    ]
    assert [j.full_name for j in source.jobs] == ["a/b/c/d/deep-job", "payments/payments-api/main"]


def test_builds_page_past_the_100_build_default(fake: FakeJenkins) -> None:
    api = api_for(fake)
    builds = api.builds("payments/payments-api/main", page_size=100)
    assert [b.sequence for b in builds] == list(range(250, 0, -1))
    assert api.http.requests_made == 3
    assert all("allBuilds[" in unquote(q) and "]{" in unquote(q) for _, _, q in fake.requests)


def test_builds_stop_at_the_high_water_mark(fake: FakeJenkins) -> None:
    api = api_for(fake)
    builds = api.builds("payments/payments-api/main", newer_than=240, page_size=100)
    assert [b.sequence for b in builds] == list(range(250, 240, -1))
    assert api.http.requests_made == 1


def test_build_fields_are_mapped(fake: FakeJenkins) -> None:
    fake.add_build("solo", building=True, result=None, user="hana.jung")
    [running, done] = api_for(fake).builds("solo")
    assert (running.status, running.completed_at, running.duration) == ("running", None, None)
    assert running.triggered_by == "hana.jung"
    assert done.status == "success" and done.duration == 400.0
    assert done.completed_at - done.started_at == dt.timedelta(seconds=400)
    assert done.branch == "main" and len(done.commit_sha) == 40
    assert done.queue_seconds == pytest.approx(2.113)
    failed = api_for(fake).builds("payments/payments-api/main", newer_than=6)[-1]
    assert failed.sequence == 7 and failed.status == "failed"


def test_stages_with_parallel_branches(fake: FakeJenkins) -> None:
    stages = api_for(fake).stages("payments/payments-api/main", 57)
    assert [(s.name, s.parent_name) for s in stages] == [
        ("Checkout", None),
        ("Build", None),
        ("Tests", None),
        ("unit-tests", "Tests"),
        ("integration-tests", "Tests"),
        ("Publish", None),
    ]
    assert stages[4].duration == 188.0


def test_recent_stages_come_eleven_runs_per_request(fake: FakeJenkins) -> None:
    api = api_for(fake)
    recent, unplaced = api.recent_stages("payments/payments-api/main")
    assert sorted(recent) == list(range(240, 251)) and unplaced == []
    assert api.http.requests_made == 1


def test_source_reads_a_window_and_skips_final_builds(fake: FakeJenkins) -> None:
    api = api_for(fake)
    source = JenkinsSource(api, ["payments/payments-api/main"], stages="all")
    builds = fake.jobs["payments/payments-api/main"]
    since = dt.datetime.fromtimestamp(builds[229].timestamp / 1000, dt.UTC)  # build 230
    until = dt.datetime.fromtimestamp(builds[245].timestamp / 1000, dt.UTC)  # build 246
    final = frozenset({("payments/payments-api/main", "231")})
    window = list(source.executions(since, until, final))
    assert [e.sequence for e in window] == list(range(245, 229, -1))
    by_number = {e.sequence: e for e in window}
    assert by_number[231].stages == ()  # stored and finished: not read again
    assert len(by_number[240].stages) == 6 and len(by_number[232].stages) == 6
    describes = [p for _, p, _ in fake.requests if p.endswith("wfapi/describe")]
    assert len(describes) == 9  # 230 and 232-239: older than the newest 11; 231 is final


def test_transient_errors_are_retried(fake: FakeJenkins) -> None:
    fake.fail_next(2, status=503)
    api = api_for(fake)
    assert len(api.builds("solo")) == 1
    assert api.http.requests_made == 3


def test_retries_give_up_with_a_typed_error(fake: FakeJenkins) -> None:
    fake.fail_next(10, status=502)
    api = api_for(fake)
    with pytest.raises(TransientSourceError, match="jenkins solo: server error 502"):
        api.builds("solo")
    assert api.http.requests_made == 4


def test_bad_credentials_are_not_retried(fake: FakeJenkins) -> None:
    api = api_for(fake, token="wrong")
    with pytest.raises(SourceAuthError, match="JENKINS_TOKEN"):
        api.builds("solo")
    assert api.http.requests_made == 1


def test_missing_job_is_named(fake: FakeJenkins) -> None:
    with pytest.raises(SourceNotFoundError, match="jenkins nope: not found"):
        api_for(fake).builds("nope")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 200, "body": b"", "content_type": "application/json"}, "was empty"),
        (
            {
                "status": 200,
                "body": b"<html><title>Jenkins is starting</title></html>",
                "content_type": "text/html",
            },
            "HTML page (Jenkins is starting)",
        ),
        (
            {"status": 200, "body": b'{"allBuilds": [', "content_type": "application/json"},
            "malformed JSON",
        ),
        (
            {"status": 200, "body": b'{"allBuilds": {}}', "content_type": "application/json"},
            "field 'allBuilds': expected list, got dict",
        ),
    ],
)
def test_bad_payloads_raise_errors_naming_the_field(
    fake: FakeJenkins, fault: dict, message: str
) -> None:
    fake.fail_next(1, **fault)
    api = api_for(fake)
    with pytest.raises(SourceDataError, match=re.escape(message)):
        api.builds("solo")
    assert api.http.requests_made == 1  # not transient: not retried


@pytest.mark.parametrize(
    ("entry", "key", "sequence", "reason"),
    [
        ({"building": False}, "sha1:", None, "field 'allBuilds[0].number': missing"),
        (
            {"number": "7", "timestamp": 1},
            "7",
            7,
            "field 'allBuilds[0].number': expected int, got str '7'",
        ),
        (
            {"number": 8, "timestamp": "yesterday"},
            "8",
            8,
            "field 'allBuilds[0].timestamp': expected int, got str 'yesterday'",
        ),
        (None, "sha1:", None, "field 'allBuilds[0]': expected an object, got NoneType"),
    ],
)
def test_an_unparsable_build_is_rejected_and_the_others_kept(
    fake: FakeJenkins, entry: object, key: str, sequence: int | None, reason: str
) -> None:
    """A record-level fault rejects that build alone (a response-level one still raises)."""
    good = fake.build_json("solo", fake.jobs["solo"][0])
    body = json.dumps({"allBuilds": [entry, good]}).encode()
    fake.fail_next(1, status=200, body=body, content_type="application/json")
    [rejected, build] = api_for(fake).builds("solo")
    assert isinstance(rejected, RejectRecord) and isinstance(build, ExecutionRecord)
    assert (rejected.kind, rejected.pipeline, rejected.sequence) == ("build", "solo", sequence)
    assert rejected.key.startswith(key) and rejected.payload == entry
    assert rejected.reason == f"jenkins solo: {reason}"
    assert build.sequence == 1 and build.status == "success"


def _read(api: JenkinsAPI, number: int, start: int) -> tuple[bytes, int, bool]:
    with api.log_stream("solo", number, start, block_size=4) as stream:
        return b"".join(stream.blocks), stream.next_start, stream.more


def test_progressive_log(fake: FakeJenkins) -> None:
    build = fake.add_build("solo", building=True, result=None)
    build.log += b"line 1\nline 2\n"
    api = api_for(fake)
    assert _read(api, build.number, 0) == (b"line 1\nline 2\n", 14, True)
    build.log += b"line 3\n"
    build.building = False
    assert _read(api, build.number, 14) == (b"line 3\n", 21, False)


def test_trigger_queues_a_build_and_adds_a_crumb_only_when_asked(fake: FakeJenkins) -> None:
    api = api_for(fake)
    item = api.trigger("solo", {"VERSION": "1.2.3"})
    assert fake.queue[item] == ("solo", {"VERSION": "1.2.3"})
    assert not any(p.endswith("crumbIssuer/api/json") for _, p, _ in fake.requests)
    assert api.queued_build(item) is None
    fake.queue[item][1]["_number"] = "2"
    assert api.queued_build(item) == 2

    fake.require_crumb = True
    second = api_for(fake)
    second.trigger("solo", {})
    second.trigger("solo", {})
    crumbs = [p for _, p, _ in fake.requests if p.endswith("crumbIssuer/api/json")]
    assert len(crumbs) == 1  # fetched once, after the first refusal, then reused


def test_null_and_empty_actions_are_tolerated(fake: FakeJenkins) -> None:
    original = fake.build_json

    def with_gaps(job: str, build):
        data = original(job, build)
        data["actions"] = [None, {}, *data["actions"], {"_class": "x.y.EmptyAction"}]
        return data

    fake.build_json = with_gaps  # type: ignore[method-assign]
    [build] = api_for(fake).builds("solo")
    assert build.triggered_by == "minji.kim" and build.branch == "main"
