"""`timbel ingest jenkins` end to end: the real command against the fake Jenkins."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.jenkins_server import FakeJenkins
from tests.test_cli import invoke

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
    first = invoke(["ingest", "jenkins", "--since", "3d", "--json"], tmp_path, **_env(jenkins))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["pipelines"] == {"offered": 2, "written": 2}
    assert report["pipeline_executions"] == {"offered": 50, "written": 50}
    # stages: the newest 11 runs of each job in one request each, and the rest of the
    # builds of the last two days described one by one
    assert report["stage_executions"]["written"] == 6 * 50
    assert report["requests"] == 1 + 2 + 2 + (50 - 22)

    again = json.loads(
        invoke(["ingest", "jenkins", "--since", "3d", "--json"], tmp_path, **_env(jenkins)).stdout
    )
    assert again["pipeline_executions"]["written"] == 0
    assert again["stage_executions"] == {"offered": 0, "written": 0}  # final: not read again
    assert again["requests"] == 1 + 2  # job list, then one builds page per job
    plain = invoke(["ingest", "jenkins", "--since", "3d"], tmp_path, **_env(jenkins)).stdout
    lines = plain.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("TABLE")) :]
    assert set(lines[1]) == {"─"}
    assert [line.split() for line in [lines[0], *lines[2:5]]] == [
        ["TABLE", "ROWS", "WRITTEN"],
        ["pipelines", "2", "0"],
        ["pipeline_executions", "50", "0"],
        ["stage_executions", "0", "0"],
    ]
    assert re.fullmatch(r"3 requests to jenkins in \d+s, run [0-9a-f]{8}", lines[5])

    listed = json.loads(
        invoke(
            ["executions", "list", "--pipeline", "checkout", "--limit", "100", "--json"], tmp_path
        ).stdout
    )
    assert len(listed) == 30 and {r["source"] for r in listed} == {"jenkins"}


def test_stages_none_reads_builds_only(jenkins: FakeJenkins, tmp_path: Path) -> None:
    report = json.loads(
        invoke(
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
    failed = invoke(["ingest", "jenkins", "--json"], tmp_path, **_env(jenkins, **env))
    assert failed.returncode == 2
    assert failed.stderr.splitlines()[-1].startswith(expected)
    listed = json.loads(invoke(["executions", "list", "--json"], tmp_path).stdout)
    assert listed == []


def test_not_configured_says_what_to_set(tmp_path: Path) -> None:
    failed = invoke(["ingest", "jenkins"], tmp_path)
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
            invoke(["ingest", "gitlab", "--since", "2d", "--json"], tmp_path, **env).stdout
        )
        assert report["pipelines"]["written"] == 2
        assert report["pipeline_executions"] == {"offered": 30, "written": 30}
        assert report["stage_executions"]["written"] == 4 * 30
        again = json.loads(
            invoke(["ingest", "gitlab", "--since", "2d", "--json"], tmp_path, **env).stdout
        )
        assert again["pipeline_executions"]["written"] == 0
    finally:
        server.stop()


def test_history_before_the_start_setting_is_one_line(tmp_path: Path) -> None:
    failed = invoke(
        ["ingest", "gitlab", "--since", "2022-01-01"],
        tmp_path,
        GITLAB_URL="http://127.0.0.1:1/",
        GITLAB_TOKEN="unused",
        GITLAB_PROJECTS="a/b",
        TIMBEL_HISTORY_START="2024-01-01",
    )
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        "timbel: error: 2022-01-01 is before TIMBEL_HISTORY_START (2024-01-01): set "
        "TIMBEL_HISTORY_START to that day or earlier to ingest older history"
    ]


def test_years_of_history_in_one_run_materialize_only_the_days_with_data(
    tmp_path: Path,
) -> None:
    """`--since 2018-06-01` (before 2024, the old partitions' start) ingests every pipeline,
    in one `ci_history` run that records a materialization for each day holding executions
    and none for the thousands of empty days."""
    import datetime as dt

    import dagster as dg

    from tests.fakes.gitlab_server import FakeGitLab

    server = FakeGitLab()
    project = server.add_project("commerce/checkout-web")
    recent = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    moments = [
        dt.datetime(2018, 6, 1, 9, tzinfo=dt.UTC),
        dt.datetime(2018, 6, 1, 15, tzinfo=dt.UTC),
        dt.datetime(2021, 2, 28, 23, 30, tzinfo=dt.UTC),
        recent - dt.timedelta(days=2),
    ]
    for moment in moments:
        server.add_pipeline(project, created=moment)
    server.start()
    try:
        env = {
            "GITLAB_URL": server.url,
            "GITLAB_TOKEN": server.token,
            "GITLAB_PROJECTS": "commerce/checkout-web",
        }
        done = invoke(["ingest", "gitlab", "--since", "2018-06-01", "--json"], tmp_path, **env)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["since"] == "2018-06-01"
    assert report["pipeline_executions"] == {"offered": 4, "written": 4}
    assert report["stage_executions"]["written"] == 4 * 4
    assert report["days_with_executions"] == 3

    days = {m.date().isoformat() for m in moments}
    instance = dg.DagsterInstance.from_config(str(tmp_path / ".timbel" / "dagster"))
    try:
        run_record = instance.get_run_record_by_id(report["run_id"])
        assert run_record is not None and run_record.dagster_run.job_name == "ci_history"
        for table in ("pipeline_executions", "stage_executions"):
            key = dg.AssetKey(["cicd", table])
            assert instance.get_materialized_partitions(key) == days
        materializations = instance.get_records_for_run(
            report["run_id"], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        assert len(materializations) == 1 + 2 * len(days)  # pipelines, then two per day
        planned = instance.get_records_for_run(
            report["run_id"], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
        assert planned == []
    finally:
        instance.dispose()
