"""`timbel logs follow|search` and `timbel build trigger` end to end against the fake Jenkins."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.jenkins_server import FakeJenkins
from tests.test_cli import invoke

JOB = "shop/api/main"


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    server.add_job(JOB, builds=2, first_timestamp=int(time.time() * 1000) - 3_600_000)
    server.start()
    yield server
    server.stop()


def _env(server: FakeJenkins, database_url: str) -> dict[str, str]:
    return {
        "JENKINS_URL": server.url,
        "JENKINS_USER": server.user,
        "JENKINS_TOKEN": server.token,
        "TIMBEL_DATABASE_URL": database_url,
    }


def test_follow_prints_the_log_then_search_finds_it(
    jenkins: FakeJenkins, database_url: str, tmp_path: Path
) -> None:
    build = jenkins.add_build(JOB, building=True, result=None, finish_after_reads=2)
    build.log += (
        b"Started by user minji.kim\n[Pipeline] stage\n"
        b"java.lang.OutOfMemoryError: Java heap space\n\tat com.shop.Cart.add\n"
    )
    env = _env(jenkins, database_url)
    followed = invoke(
        ["logs", "follow", "jenkins", JOB, str(build.number), "--poll", "0"], tmp_path, **env
    )
    assert followed.returncode == 0, followed.stderr
    assert "java.lang.OutOfMemoryError: Java heap space" in followed.stdout
    assert f"#{build.number} ended success" in followed.stdout

    for pattern in ("OutOfMemoryError", "heap space", "Cart.add"):
        found = json.loads(invoke(["logs", "search", pattern, "--json"], tmp_path, **env).stdout)
        assert [(m["external_id"], m["line_number"]) for m in found] != [], pattern
        assert all(pattern.lower() in m["line"].lower() for m in found)
    [match] = json.loads(
        invoke(
            ["logs", "search", "heap space", "--pipeline", "shop", "--json"], tmp_path, **env
        ).stdout
    )
    assert (match["external_id"], match["line_number"]) == (str(build.number), 3)
    nothing = invoke(["logs", "search", "segfault"], tmp_path, **env)
    assert "No stored log line matches." in nothing.stdout
    assert "stored as Timbel follows builds: `timbel logs follow" in " ".join(
        nothing.stdout.split()
    )

    listed = json.loads(
        invoke(["executions", "list", "--search", "heap space", "--json"], tmp_path, **env).stdout
    )
    assert [r["external_id"] for r in listed] == [str(build.number)]
    shown = invoke(["executions", "show", listed[0]["id"], "--log"], tmp_path, **env)
    assert "\tat com.shop.Cart.add" in shown.stdout and "integration-tests" in shown.stdout


def test_trigger_with_parameters(jenkins: FakeJenkins, tmp_path: Path) -> None:
    jenkins.start_queued_builds = True
    env = _env(jenkins, f"sqlite:///{tmp_path / 'w.db'}")
    triggered = invoke(
        [
            "build",
            "trigger",
            "jenkins",
            JOB,
            "--param",
            "VERSION=2.0.1",
            "--param",
            "DRY_RUN=false",
            "--poll",
            "0",
            "--json",
        ],
        tmp_path,
        **env,
    )
    assert triggered.returncode == 0, triggered.stderr
    report = json.loads(triggered.stdout)
    assert report["status"] == "success"
    [(_job, parameters)] = jenkins.queue.values()
    assert parameters["VERSION"] == "2.0.1" and parameters["DRY_RUN"] == "false"


def test_bad_parameters_and_unknown_builds_are_one_line(
    jenkins: FakeJenkins, tmp_path: Path
) -> None:
    env = _env(jenkins, f"sqlite:///{tmp_path / 'w.db'}")
    bad = invoke(["build", "trigger", "jenkins", JOB, "--param", "oops"], tmp_path, **env)
    assert bad.returncode == 2 and "--param must look like KEY=VALUE" in bad.stderr
    missing = invoke(["logs", "follow", "jenkins", JOB, "999"], tmp_path, **env)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        f"timbel: error: jenkins {JOB} #999: no such build"
    )


@pytest.mark.parametrize(
    "args",
    [["logs", "search", "ab"], ["executions", "list", "--search", "ab"]],
)
def test_a_search_under_three_characters_is_one_line_naming_the_minimum(
    args: list[str], warehouse_url: str, tmp_path: Path
) -> None:
    result = invoke(args, tmp_path, TIMBEL_DATABASE_URL=warehouse_url)
    assert result.returncode != 0
    assert "the search pattern 'ab' is too short: give at least 3 characters" in result.stderr
    assert "Traceback" not in result.stderr
