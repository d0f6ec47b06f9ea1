"""`timbel ingest jenkins` end to end: the real command against the fake Jenkins."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.jenkins_server import FakeJenkins
from tests.test_cli import run

HOUR_MS = 3_600_000


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    now_ms = int(time.time() * 1000)
    server.add_job(
        "shop/checkout/main", builds=30, first_timestamp=now_ms - 40 * HOUR_MS, every_ms=HOUR_MS
    )
    server.add_job(
        "shop/catalog/main", builds=20, first_timestamp=now_ms - 30 * HOUR_MS, every_ms=HOUR_MS
    )
    server.start()
    yield server
    server.stop()


def _env(server: FakeJenkins, **extra: str) -> dict[str, str]:
    return {
        "JENKINS_URL": server.url,
        "JENKINS_USER": server.user,
        "JENKINS_TOKEN": server.token,
        **extra,
    }


def test_ingest_then_reingest(jenkins: FakeJenkins, tmp_path: Path) -> None:
    first = run(["ingest", "jenkins", "--since", "3d", "--json"], tmp_path, **_env(jenkins))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["pipelines"] == {"offered": 2, "written": 2}
    assert report["pipeline_executions"] == {"offered": 50, "written": 50}
    # stages: the newest 11 runs of each job in one request each, and the rest of the
    # builds of the last two days described one by one
    assert report["stage_executions"]["written"] == 6 * 50
    assert report["requests"] == 1 + 2 + 2 + (50 - 22)

    again = json.loads(
        run(["ingest", "jenkins", "--since", "3d", "--json"], tmp_path, **_env(jenkins)).stdout
    )
    assert again["pipeline_executions"]["written"] == 0
    assert again["stage_executions"] == {"offered": 0, "written": 0}  # final: not read again
    assert again["requests"] == 1 + 2  # job list, then one builds page per job

    listed = json.loads(
        run(
            ["executions", "list", "--pipeline", "checkout", "--limit", "100", "--json"], tmp_path
        ).stdout
    )
    assert len(listed) == 30 and {r["source"] for r in listed} == {"jenkins"}


def test_stages_none_reads_builds_only(jenkins: FakeJenkins, tmp_path: Path) -> None:
    report = json.loads(
        run(
            ["ingest", "jenkins", "--since", "3d", "--stages", "none", "--json"],
            tmp_path,
            **_env(jenkins),
        ).stdout
    )
    assert report["pipeline_executions"]["written"] == 50
    assert report["requests"] == 3


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"JENKINS_TOKEN": "wrong"}, "timbel: error: jenkins job list: access refused (401)"),
        (
            {"JENKINS_URL": "http://127.0.0.1:1/"},
            "timbel: error: jenkins job list: cannot connect to http://127.0.0.1:1/",
        ),
    ],
)
def test_failures_are_one_line_and_store_nothing(
    jenkins: FakeJenkins, tmp_path: Path, env: dict, expected: str
) -> None:
    failed = run(["ingest", "jenkins", "--json"], tmp_path, **_env(jenkins, **env))
    assert failed.returncode == 2
    assert failed.stderr.splitlines()[-1].startswith(expected)
    listed = json.loads(run(["executions", "list", "--json"], tmp_path).stdout)
    assert listed == []


def test_not_configured_says_what_to_set(tmp_path: Path) -> None:
    failed = run(["ingest", "jenkins"], tmp_path)
    assert failed.returncode == 2
    assert "set JENKINS_URL" in failed.stderr.splitlines()[-1]


def test_ingest_gitlab(tmp_path: Path) -> None:
    import datetime as dt

    from tests.fakes.gitlab_server import FakeGitLab

    server = FakeGitLab()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)
    server.add_project("commerce/checkout-web", pipelines=25, first=start)
    server.add_project("platform/auth-gateway", pipelines=5, first=start)
    server.rate_limit_every = 5  # every fifth request is answered 429 with Retry-After: 0
    server.start()
    try:
        env = {
            "GITLAB_URL": server.url,
            "GITLAB_TOKEN": server.token,
            "GITLAB_PROJECTS": "commerce/checkout-web,11",
        }
        report = json.loads(
            run(["ingest", "gitlab", "--since", "2d", "--json"], tmp_path, **env).stdout
        )
        assert report["pipelines"]["written"] == 2
        assert report["pipeline_executions"] == {"offered": 30, "written": 30}
        assert report["stage_executions"]["written"] == 4 * 30
        again = json.loads(
            run(["ingest", "gitlab", "--since", "2d", "--json"], tmp_path, **env).stdout
        )
        assert again["pipeline_executions"]["written"] == 0
    finally:
        server.stop()
