"""What real Jenkins and GitLab servers send that their documentation does not promise:
each odd shape with the exact record it becomes (issue 12, "one odd record stops a whole
ingestion")."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from timbel_dagster.resources.errors import SourceDataError
from timbel_dagster.resources.gitlab.parse import parse_job, parse_pipeline
from timbel_dagster.resources.jenkins.api import build_or_reject, stages_or_reject
from timbel_dagster.resources.jenkins.client import SYSTEM
from timbel_dagster.resources.jenkins.parse import parse_build, parse_stages
from timbel_dagster.resources.payload import Fields

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUILD = json.loads((FIXTURES / "jenkins" / "build.json").read_text())
DESCRIBE = json.loads((FIXTURES / "jenkins" / "wfapi_describe.json").read_text())
INTERRUPTED = json.loads((FIXTURES / "jenkins" / "wfapi_describe_interrupted.json").read_text())
PIPELINE = json.loads((FIXTURES / "gitlab" / "pipeline.json").read_text())
JOB = json.loads((FIXTURES / "gitlab" / "job.json").read_text())
JOB_NAME = "payments-api/main"
FLOW_INTERRUPTED = "org.jenkinsci.plugins.workflow.steps.FlowInterruptedException"


def build(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BUILD)
    data.update(changes)
    return data


def jenkins_build(data: dict[str, Any]):
    return parse_build(JOB_NAME, Fields(SYSTEM, JOB_NAME, data))


@pytest.mark.parametrize(
    ("result", "building", "status", "error", "finished"),
    [
        ("SUCCESS", False, "success", None, True),
        ("UNSTABLE", False, "failed", "build result UNSTABLE", True),
        ("NOT_BUILT", False, "aborted", None, True),
        (None, True, "running", None, False),
        (None, False, "pending", None, False),
        # results outside the documented five: kept raw, the build finished all the same
        ("CUSTOM_RESULT", False, "unknown", "unknown build result 'CUSTOM_RESULT'", True),
        ("success", False, "unknown", "unknown build result 'success'", True),
    ],
)
def test_jenkins_build_results(
    result: str | None, building: bool, status: str, error: str | None, finished: bool
) -> None:
    execution = jenkins_build(build(result=result, building=building))
    assert (execution.status, execution.error_message) == (status, error)
    assert execution.completed_at == (
        dt.datetime(2025, 10, 31, 8, 46, 52, 883000, tzinfo=dt.UTC) if finished else None
    )
    assert execution.duration == (412.883 if finished else None)


def test_jenkins_build_artifacts_with_download_links() -> None:
    execution = jenkins_build(build())
    assert execution.artifacts == {
        "files": [
            {
                "name": "payments-api-1.4.2.jar",
                "path": "target/payments-api-1.4.2.jar",
                "url": "http://jenkins.example.org/job/payments-api/job/main/57/artifact/"
                "target/payments-api-1.4.2.jar",
            },
            {
                "name": "sbom.cdx.json",
                "path": "build/reports/sbom.cdx.json",
                "url": "http://jenkins.example.org/job/payments-api/job/main/57/artifact/"
                "build/reports/sbom.cdx.json",
            },
        ]
    }
    spaced = jenkins_build(
        build(artifacts=[None, {"fileName": "a b.txt", "relativePath": "out/a b.txt"}])
    )
    assert spaced.artifacts == {
        "files": [
            {
                "name": "a b.txt",
                "path": "out/a b.txt",
                "url": "http://jenkins.example.org/job/payments-api/job/main/57/artifact/"
                "out/a%20b.txt",
            }
        ]
    }
    assert jenkins_build(build(artifacts=[])).artifacts is None
    assert jenkins_build({k: v for k, v in BUILD.items() if k != "artifacts"}).artifacts is None


def _stages(data: dict[str, Any]):
    return parse_stages(JOB_NAME, 58, Fields(SYSTEM, JOB_NAME, data).children("stages"))


def test_a_stage_interrupted_by_flow_interrupted_exception() -> None:
    """`"status": null` with an `error` object: unknown, the error's message as its text."""
    stages = _stages(INTERRUPTED)
    assert [(s.name, s.status, s.error_message) for s in stages] == [
        ("Checkout", "success", None),
        ("Build", "unknown", "no stage status; Aborted by Minji Kim"),
        ("Publish", "skipped", None),
    ]
    assert stages[1].duration == 165.412 and stages[1].external_id == "14"


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"status": None, "error": {"message": None, "type": FLOW_INTERRUPTED}}, "unknown",
         f"no stage status; {FLOW_INTERRUPTED}"),
        ({"status": None}, "unknown", "no stage status"),
        ({"status": "NOT_A_STATUS"}, "unknown", "unknown stage status 'NOT_A_STATUS'"),
        (
            {"status": "FAILED", "error": {"message": "script returned exit code 1",
                                           "type": "hudson.AbortException"}},
            "failed",
            "script returned exit code 1",
        ),
        ({"status": "PAUSED_PENDING_INPUT"}, "running", None),
    ],
)  # fmt: skip
def test_odd_stage_statuses(changes: dict[str, Any], status: str, error: str | None) -> None:
    data = copy.deepcopy(DESCRIBE)
    data["stages"][1].update(changes)
    stage = _stages(data)[1]
    assert (stage.name, stage.status, stage.error_message) == ("Build", status, error)


@pytest.mark.parametrize(
    ("entry", "key", "sequence", "reason"),
    [
        (
            build(number=None),
            "sha1:",
            None,
            "jenkins payments-api/main: field 'allBuilds[3].number': missing",
        ),
        (
            build(result=7),
            "57",
            57,
            "jenkins payments-api/main: field 'allBuilds[3].result': expected str, got int 7",
        ),
        (
            build(artifacts=[{"fileName": "x"}]),
            "57",
            57,
            "jenkins payments-api/main: field 'allBuilds[3].artifacts[0].relativePath': missing",
        ),
        (
            [1, 2],
            "sha1:",
            None,
            "jenkins payments-api/main: field 'allBuilds[3]': expected an object, got list",
        ),
    ],
)
def test_an_unparsable_build_becomes_a_reject(
    entry: Any, key: str, sequence: int | None, reason: str
) -> None:
    reject = build_or_reject(JOB_NAME, entry, "allBuilds[3]")
    assert (reject.kind, reject.pipeline, reject.sequence, reject.reason) == (
        "build",
        JOB_NAME,
        sequence,
        reason,
    )
    assert reject.key.startswith(key) and reject.payload == entry
    if key == "sha1:":  # the same payload gives the same key: rejected once
        assert build_or_reject(JOB_NAME, copy.deepcopy(entry), "allBuilds[3]").key == reject.key


def test_an_unparsable_stage_list_becomes_a_reject_naming_its_build() -> None:
    run = copy.deepcopy(DESCRIBE)
    del run["stages"][2]["name"]
    reject = stages_or_reject(JOB_NAME, JOB_NAME, run, "[0]")
    assert (reject.kind, reject.key, reject.sequence) == ("stages", "57", 57)
    assert reject.reason == "jenkins payments-api/main: field '[0].stages[2].name': missing"


# -- GitLab -------------------------------------------------------------------------------
def gitlab_job(**changes: Any) -> Fields:
    data = copy.deepcopy(JOB)
    data.update(changes)
    return parse_job("commerce/checkout-web", data)[1]


@pytest.mark.parametrize(
    ("status", "mapped", "error"),
    [
        ("success", "success", None),
        ("canceling", "running", None),
        ("waiting_for_callback", "running", None),
        ("brand_new_status", "unknown", "unknown status 'brand_new_status'"),
        (None, "unknown", "no status"),
    ],
)
def test_gitlab_pipeline_statuses(status: str | None, mapped: str, error: str | None) -> None:
    pipeline = dict(PIPELINE, status=status)
    execution = parse_pipeline("commerce/checkout-web", pipeline, [gitlab_job()])
    assert (execution.status, execution.error_message) == (mapped, error)


def test_an_unknown_gitlab_pipeline_is_finished_once_all_its_jobs_are() -> None:
    pipeline = dict(PIPELINE, status="brand_new_status")
    done = parse_pipeline("commerce/checkout-web", pipeline, [gitlab_job()])
    assert done.completed_at == dt.datetime(2026, 11, 1, 8, 4, 31, 198000, tzinfo=dt.UTC)
    running = parse_pipeline(
        "commerce/checkout-web",
        pipeline,
        [gitlab_job(), gitlab_job(id=9, status="running", finished_at=None)],
    )
    assert running.completed_at is None and running.duration is None


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"status": "new_job_status"}, "unknown", "unknown status 'new_job_status'"),
        ({"status": None}, "unknown", "no status"),
        ({"status": "failed", "failure_reason": "script_failure"}, "failed", "script_failure"),
        ({"status": "manual"}, "skipped", None),
    ],
)
def test_gitlab_job_statuses(changes: dict[str, Any], status: str, error: str | None) -> None:
    execution = parse_pipeline("commerce/checkout-web", PIPELINE, [gitlab_job(**changes)])
    [stage] = execution.stages
    assert (stage.status, stage.error_message) == (status, error)


def test_gitlab_job_artifacts_metadata() -> None:
    archive = {"file_type": "archive", "size": 1000, "filename": "artifacts.zip",
               "file_format": "zip"}  # fmt: skip
    jobs = [
        gitlab_job(),
        gitlab_job(
            id=9,
            name="compile",
            artifacts=[archive],
            artifacts_expire_at="2026-12-01T08:00:00.000Z",
            web_url="https://gitlab.example.org/commerce/checkout-web/-/jobs/9",
        ),
    ]
    execution = parse_pipeline("commerce/checkout-web", PIPELINE, jobs)
    assert execution.artifacts == {
        "files": [
            {
                "job": "unit-tests",
                "job_id": 8,
                "file_type": "trace",
                "filename": "job.log",
                "size": 1831,
                "file_format": None,
                "expire_at": None,
                "url": "https://gitlab.example.org/commerce/checkout-web/-/jobs/8/artifacts/"
                "download?file_type=trace",
            },
            {
                "job": "compile",
                "job_id": 9,
                "file_type": "archive",
                "filename": "artifacts.zip",
                "size": 1000,
                "file_format": "zip",
                "expire_at": "2026-12-01T08:00:00+00:00",
                "url": "https://gitlab.example.org/commerce/checkout-web/-/jobs/9/artifacts/"
                "download?file_type=archive",
            },
        ]
    }
    no_files = parse_pipeline("commerce/checkout-web", PIPELINE, [gitlab_job(artifacts=[])])
    assert no_files.artifacts is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pipeline": None}, "field 'pipeline': missing"),
        ({"id": "8"}, "field 'id': expected int, got str '8'"),
        ({"duration": "four minutes"}, "field 'duration': expected int or float"),
        ({"artifacts": [{"size": 3}]}, "field 'artifacts[0].file_type': missing"),
        ({"artifacts_expire_at": "soon"}, "field 'artifacts_expire_at': not an ISO-8601 time"),
        ({"user": {"id": 1}}, "field 'user.username': missing"),
        # Found by the property tests: read only when the pipeline was timed, this made the
        # whole pipeline a reject instead of the one job.
        ({"finished_at": False}, "field 'finished_at': expected str, got bool False"),
    ],
)
def test_an_unparsable_gitlab_job_is_refused_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SourceDataError) as raised:
        gitlab_job(**changes)
    assert str(raised.value).startswith(f"gitlab commerce/checkout-web job {changes.get('id', 8)}")
    assert message in str(raised.value)
