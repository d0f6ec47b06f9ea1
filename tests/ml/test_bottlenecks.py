"""Pipeline bottlenecks: critical path, shares, regressions, flaky stages, suggestions, and
the warehouse loader."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import missing_service
from timbel_dagster.ml.bottlenecks.analysis import analyse_pipelines
from timbel_dagster.ml.bottlenecks.data import EXECUTION_COLUMNS, STAGE_COLUMNS, load_frames
from timbel_dagster.ml.bottlenecks.flaky import flake_rate
from timbel_dagster.ml.bottlenecks.paths import build_layout

IDOFT = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "flaky-idoft"
    / "tso-iso-rates.csv"
)
T0 = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)

# (name, parent, position, seconds) of the "app" pipeline; its typical critical path is
# checkout 10 + build 200 + integration-tests 300 + security-scan 60 + deploy 30 = 600 s.
APP = [
    ("checkout", None, 0, 10.0),
    ("build", None, 1, 200.0),
    ("unit-tests", "Tests", 2, 100.0),
    ("integration-tests", "Tests", 3, 300.0),
    ("lint", "Tests", 4, 50.0),
    ("security-scan", None, 5, 60.0),
    ("deploy", None, 6, 30.0),
]


def _app_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Six runs of "app" on five commits.

    e3: integration-tests fails once (120 s) and passes on its retry;
    e4: unit-tests fails on commit c4 (the run takes 520 s), e5 re-runs c4 and passes.
    """
    executions, stages = [], []
    plan = [("e1", "c1"), ("e2", "c2"), ("e3", "c3"), ("e4", "c4"), ("e5", "c4"), ("e6", "c5")]
    for number, (execution, commit) in enumerate(plan):
        failed = execution == "e4"
        duration = {"e3": 720.0, "e4": 520.0}.get(execution, 600.0)
        executions.append(
            {
                "id": execution,
                "pipeline": "app",
                "status": "failed" if failed else "success",
                "started_at": T0 + dt.timedelta(hours=number),
                "duration": duration,
                "queue_seconds": 12.0,
                "commit_sha": commit,
            }
        )
        for name, parent, position, seconds in APP:
            status = "success"
            if failed and name == "unit-tests":
                status = "failed"
            elif failed and position > 4:
                status, seconds = "skipped", 0.0
            if execution == "e3" and name == "integration-tests":
                stages.append(_stage(execution, name, parent, position, "failed", 120.0, 5.0, 1))
                stages.append(_stage(execution, name, parent, position, "success", seconds, 0.0, 2))
                continue
            queue = 5.0 if parent else 0.0
            stages.append(_stage(execution, name, parent, position, status, seconds, queue, 1))
    return pd.DataFrame(executions), pd.DataFrame(stages)


def _stage(execution, name, parent, position, status, seconds, queue, attempt) -> dict:
    return {
        "execution_id": execution,
        "name": name,
        "parent_name": parent,
        "position": position,
        "status": status,
        "started_at": None,
        "duration": seconds,
        "queue_seconds": queue,
        "attempt": attempt,
    }


@pytest.fixture(scope="module")
def app_report():
    return analyse_pipelines(*_app_frames())


def test_critical_path_takes_the_longest_parallel_branch(app_report) -> None:
    assert app_report.critical_paths == [
        {
            "pipeline": "app",
            "stages": ["checkout", "build", "integration-tests", "security-scan", "deploy"],
            "seconds": 600.0,
            "median_execution_seconds": 600.0,
        }
    ]


def test_stage_rows_have_wall_queue_and_critical_shares(app_report) -> None:
    rows = app_report.stages.set_index("stage")
    assert list(rows.index) == [name for name, *_ in APP]
    assert rows.loc["build", "median_seconds"] == 200.0
    assert rows.loc["build", "wall_share"] == pytest.approx(200 / 600, abs=1e-4)
    assert rows.loc["integration-tests", "critical_share"] == 0.5
    assert rows.loc["unit-tests", "critical_share"] == 0.0
    assert not rows.loc["unit-tests", "on_critical_path"]
    # 5 s of queue per branch and run, none elsewhere (the retry did not queue)
    assert rows.loc["lint", "queue_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert rows.loc["build", "queue_share"] == 0.0
    assert rows.loc["unit-tests", "failure_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert rows.loc["security-scan", "runs"] == 5  # skipped in e4


def test_flaky_stages_from_retries_and_reruns_on_the_same_commit(app_report) -> None:
    flaky = {f["stage"]: f for f in app_report.flaky}
    assert set(flaky) == {"unit-tests", "integration-tests"}
    # unit-tests: 6 runs, the failure on c4 was followed by a pass on c4
    assert flaky["unit-tests"]["score"] == pytest.approx(1 / 6, abs=1e-4)
    assert flaky["unit-tests"]["commits_with_flips"] == 1
    assert flaky["unit-tests"]["retried_passes"] == 0
    assert flaky["unit-tests"]["wasted_seconds_per_run"] == pytest.approx(520 / 6, abs=0.05)
    # integration-tests: 7 attempts, one failure that its retry turned into a pass
    assert flaky["integration-tests"]["score"] == pytest.approx(1 / 7, abs=1e-4)
    assert flaky["integration-tests"]["retried_passes"] == 1
    assert flaky["integration-tests"]["wasted_seconds_per_run"] == 20.0


def test_suggestions_with_exact_savings(app_report) -> None:
    found = [(s.kind, s.stages, s.seconds_saved_per_run) for s in app_report.suggestions]
    assert found == [
        # 300 s branch in two 150 s shards: the block then takes 150 s
        ("split", ("integration-tests",), 150.0),
        # the 200 s build is the same on all five commits: half of it cached
        ("cache", ("build",), 100.0),
        ("quarantine", ("unit-tests",), 86.7),
        # the Tests block (300 s) and security-scan (60 s) side by side: 360 - 300
        ("parallelise", ("Tests", "security-scan"), 60.0),
        ("quarantine", ("integration-tests",), 20.0),
    ]
    assert all(s.pipeline == "app" and s.reason for s in app_report.suggestions)


def test_no_regression_in_a_steady_pipeline(app_report) -> None:
    assert app_report.regressions == []


def test_report_records_are_json(app_report) -> None:
    records = json.loads(json.dumps(app_report.to_records()))
    assert set(records) == {
        "stages",
        "critical_paths",
        "regressions",
        "flaky",
        "suggestions",
        "series_points",
    }
    # One duration series per stage that passed and one per pipeline, searched for changes.
    assert len(records["series_points"]) == len(records["stages"]) + len(records["critical_paths"])
    assert all(n > 0 for n in records["series_points"])
    assert records["suggestions"][0]["stages"] == ["integration-tests"]
    assert records["stages"][0]["parent_name"] is None


def test_duration_regressions_per_stage_and_for_the_pipeline() -> None:
    executions, stages = [], []
    for i in range(40):
        build = (100.0 if i < 25 else 160.0) + (i % 3 - 1) * 2
        executions.append(
            {
                "id": f"s{i}",
                "pipeline": "svc",
                "status": "success",
                "started_at": T0 + dt.timedelta(hours=i),
                "duration": build + 50.0,
                "commit_sha": f"c{i}",
            }
        )
        stages += [
            _stage(f"s{i}", "build", None, 0, "success", build, None, 1),
            _stage(f"s{i}", "unit-tests", None, 1, "success", 50.0, None, 1),
        ]
    report = analyse_pipelines(pd.DataFrame(executions), pd.DataFrame(stages))
    by_stage = {r["stage"]: r for r in report.regressions}
    assert set(by_stage) == {"build", None}
    build = by_stage["build"]
    assert build["index"] == 25 and build["execution_id"] == "s25"
    assert build["at"] == (T0 + dt.timedelta(hours=25)).isoformat()
    assert (build["before_median_seconds"], build["after_median_seconds"]) == (100.0, 160.0)
    assert build["pct_change"] == 60.0
    assert by_stage[None]["pct_change"] == pytest.approx(100 * (210 / 150 - 1), abs=0.1)


def test_a_block_row_is_not_counted_besides_its_branches() -> None:
    # Jenkins lists the parallel stage itself ("Tests", as long as its longest branch)
    layout = build_layout(
        {(None, "build"): 0, (None, "Tests"): 1, ("Tests", "unit"): 2, ("Tests", "e2e"): 3}
    )
    seconds = {
        (None, "build"): 50.0,
        (None, "Tests"): 95.0,
        ("Tests", "unit"): 30.0,
        ("Tests", "e2e"): 90.0,
    }
    assert layout.length(seconds) == 140.0
    assert layout.path(seconds) == [(None, "build"), ("Tests", "e2e")]


def test_jenkins_block_row_is_neither_on_the_path_nor_flaky() -> None:
    executions, stages = [], []
    plan = [("x1", "c1", "success"), ("x2", "c2", "failed"), ("x3", "c2", "success")]
    for number, (execution, commit, status) in enumerate(plan):
        executions.append(
            {
                "id": execution,
                "pipeline": "jenkins-job",
                "status": status,
                "started_at": T0 + dt.timedelta(hours=number),
                "duration": 150.0,
                "commit_sha": commit,
            }
        )
        stages += [
            _stage(execution, "build", None, 0, "success", 50.0, None, 1),
            _stage(execution, "Tests", None, 1, status, 95.0, None, 1),
            _stage(execution, "unit", "Tests", 2, "success", 30.0, None, 1),
            _stage(execution, "e2e", "Tests", 3, status, 90.0, None, 1),
        ]
    report = analyse_pipelines(pd.DataFrame(executions), pd.DataFrame(stages))
    assert report.critical_paths[0]["stages"] == ["build", "e2e"]
    assert report.critical_paths[0]["seconds"] == 140.0
    assert [f["stage"] for f in report.flaky] == ["e2e"]
    assert report.flaky[0]["wasted_seconds_per_run"] == 50.0  # x2's 150 s over 3 runs


def test_gitlab_stages_are_blocks_even_for_a_job_named_like_its_stage() -> None:
    layout = build_layout(
        {("build", "build"): 0, ("test", "rspec"): 1, ("test", "lint"): 1, ("deploy", "deploy"): 2}
    )
    seconds = {
        ("build", "build"): 60.0,
        ("test", "rspec"): 200.0,
        ("test", "lint"): 20.0,
        ("deploy", "deploy"): 10.0,
    }
    assert [u.label for u in layout.units] == ["build", "test", "deploy"]
    assert layout.length(seconds) == 270.0


def test_missing_columns_are_named() -> None:
    executions, stages = _app_frames()
    with pytest.raises(ValueError, match=r"stages frame is missing column.*attempt"):
        analyse_pipelines(executions, stages.drop(columns=["attempt"]))


# -- the flakiness score against iDFlakies/IDoFT rerun counts -------------------------------


@pytest.fixture(scope="module")
def idoft() -> pd.DataFrame:
    if not IDOFT.is_file():
        missing_service(f"the IDoFT rerun rates are missing at {IDOFT}")
    frame = pd.read_csv(IDOFT)
    frame.columns = [
        "project",
        "sha",
        "module",
        "test",
        "fails_by_round",
        "runs_by_round",
        "p_value",
        "direction",
        "suite_runs",
        "suite_passes",
        "iso_runs",
        "iso_passes",
    ]
    return frame


def _score(passes: int, runs: int) -> float:
    # all reruns of a test in the file are on one commit
    return flake_rate([(passes, runs - passes)])


def test_flakiness_score_on_idoft_reruns(idoft: pd.DataFrame) -> None:
    assert len(idoft) == 101
    suite = [_score(p, n) for p, n in zip(idoft["suite_passes"], idoft["suite_runs"], strict=True)]
    isolated = [_score(p, n) for p, n in zip(idoft["iso_passes"], idoft["iso_runs"], strict=True)]
    # every test both passed and failed in the suite: all flaky
    assert all(s > 0 for s in suite)
    for score, passes, runs in zip(isolated, idoft["iso_passes"], idoft["iso_runs"], strict=True):
        if passes == runs:
            assert score == 0.0  # only passes: not flaky
        elif passes == 0:
            assert score == 0.0  # fails every time in isolation: broken, not flaky
        else:
            assert score > 0.0
    # order-dependent tests (always pass alone, sometimes fail in the suite) score higher in
    # the suite than alone
    order_dependent = idoft["iso_passes"] == idoft["iso_runs"]
    assert order_dependent.sum() > 30
    assert all(s > i for s, i, od in zip(suite, isolated, order_dependent, strict=True) if od)
    # the ranking follows the failure count: the test that failed most (455 of 4000) is first
    top = max(range(len(suite)), key=suite.__getitem__)
    assert idoft["suite_runs"][top] - idoft["suite_passes"][top] == 455
    assert suite[top] == pytest.approx(455 / 4000)


def test_flake_rate_pools_commits() -> None:
    # c1: pass, fail, pass (1 flaky failure); c2: fail, fail (broken); c3: pass
    assert flake_rate([(2, 1), (0, 2), (1, 0)]) == pytest.approx(1 / 6)
    assert flake_rate([]) == 0.0
    with pytest.raises(ValueError, match="negative"):
        flake_rate([(1, -1)])


# -- the warehouse loader -------------------------------------------------------------------


def test_load_frames_reads_executions_and_stages_with_the_pipeline(warehouse_url: str) -> None:
    from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord, StageRecord
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.store import loaders

    executions, stages = _app_frames()
    records = []
    for row in executions.itertuples():
        own = stages[stages["execution_id"] == row.id]
        records.append(
            ExecutionRecord(
                pipeline="team/app",
                external_id=row.id,
                status=row.status,
                triggered_by=None,
                started_at=row.started_at.to_pydatetime(),
                completed_at=None,
                duration=row.duration,
                commit_sha=row.commit_sha,
                branch="main",
                url=None,
                queue_seconds=row.queue_seconds,
                stages=tuple(
                    StageRecord(
                        external_id=f"{row.id}-{s.name}-{s.attempt}",
                        name=s.name,
                        position=s.position,
                        status=s.status,
                        started_at=None,
                        duration=s.duration,
                        parent_name=None if pd.isna(s.parent_name) else s.parent_name,
                        queue_seconds=s.queue_seconds,
                        attempt=s.attempt,
                    )
                    for s in own.itertuples()
                ),
            )
        )
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        loaders.store_pipelines(
            connection, "sample", [PipelineRecord("jenkins", "team/app", "app", None, "main", None)]
        )
        loaders.store_executions(connection, "sample", records)

    with engine.connect() as connection:
        loaded_executions, loaded_stages = load_frames(connection)
        recent, recent_stages = load_frames(connection, since=T0 + dt.timedelta(hours=4))

    assert list(loaded_executions.columns) == EXECUTION_COLUMNS
    assert list(loaded_stages.columns) == STAGE_COLUMNS
    assert len(loaded_executions) == 6 and len(loaded_stages) == len(stages)
    assert set(loaded_executions["pipeline"]) == set(loaded_stages["pipeline"]) == {"team/app"}
    assert list(loaded_executions["external_id"]) == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert str(loaded_executions["started_at"].dt.tz) == "UTC"
    assert list(recent["external_id"]) == ["e5", "e6"]
    assert set(recent_stages["execution_id"]) == set(recent["id"])

    report = analyse_pipelines(loaded_executions, loaded_stages)
    assert report.critical_paths[0]["stages"] == [
        "checkout",
        "build",
        "integration-tests",
        "security-scan",
        "deploy",
    ]
    assert [s.seconds_saved_per_run for s in report.suggestions] == [150.0, 100.0, 86.7, 60.0, 20.0]
