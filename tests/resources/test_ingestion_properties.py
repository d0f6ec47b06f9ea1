"""Property tests: recorded Jenkins and GitLab payloads, mutated the ways real servers and
proxies mangle them (nulls, missing keys, unknown enum values, wrong types, truncation), go
through the real parsing and storage path. Whatever the mutation: no crash, every record left
alone is stored, and each record that cannot be parsed is in `ingestion_rejects` once, still
once after a second run over the same window.

The server side is an in-memory stand-in for the HTTP clients (the loopback fakes cost a
server per example); each example runs in a transaction that is rolled back.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from timbel_dagster.assets.ingestion import ingest_executions, ingest_pipelines
from timbel_dagster.resources.errors import SourceNotFoundError
from timbel_dagster.resources.gitlab.source import GitLabSource
from timbel_dagster.resources.jenkins.api import JenkinsAPI
from timbel_dagster.resources.jenkins.source import JenkinsSource
from timbel_dagster.resources.payload import record_id
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ingestion import IngestionReject
from timbel_dagster.warehouse.schema.models import PipelineExecution, StageExecution

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUILD = json.loads((FIXTURES / "jenkins" / "build.json").read_text())
DESCRIBE = json.loads((FIXTURES / "jenkins" / "wfapi_describe.json").read_text())
PIPELINE = json.loads((FIXTURES / "gitlab" / "pipeline.json").read_text())
JOB = json.loads((FIXTURES / "gitlab" / "job.json").read_text())
PROJECT = json.loads((FIXTURES / "gitlab" / "project.json").read_text())

SINCE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
UNTIL = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
BUILDS = 6
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    # the warehouse fixture is shared by the examples on purpose: each rolls back
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- mutations ----------------------------------------------------------------------------
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**13),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
)
Mutation = Callable[[Any], Any]


@st.composite
def mutations(draw: st.DrawFn, record: dict[str, Any], enum_field: str) -> Mutation:
    """One way of mangling a record like `record` (a dict from a recorded payload)."""
    how = draw(st.sampled_from(["null", "drop", "enum", "type", "truncate", "text", "nested"]))
    field = draw(st.sampled_from(sorted(record)))
    junk = draw(JUNK)
    if type(junk) is type(record[field]):  # a wrong type is a different type
        junk = {"x": junk} if isinstance(junk, list) else [junk]
    enum_value = draw(st.one_of(st.none(), st.text(min_size=1, max_size=12)))
    cut = draw(st.integers(0, max(len(record) - 1, 0)))
    nested_list = [k for k in sorted(record) if isinstance(record[k], list) and record[k]]
    nested = draw(st.sampled_from(nested_list)) if nested_list else None
    index = draw(st.integers(0, 20))

    def apply(value: Any) -> Any:
        value = copy.deepcopy(value)
        if how == "null":
            value[field] = None
        elif how == "drop":
            value.pop(field, None)
        elif how == "enum":
            value[enum_field] = enum_value
        elif how == "type":
            value[field] = junk
        elif how == "truncate":  # the object cut after its first keys
            value = dict(list(value.items())[:cut])
        elif how == "text":  # the record as truncated JSON text
            text = json.dumps(value)
            value = text[: max(1, len(text) * cut // max(len(record), 1))]
        elif nested is not None:  # a field of one element of a nested list
            items = value[nested]
            item = items[index % len(items)]
            if isinstance(item, dict) and item:
                key = sorted(item)[index % len(item)]
                wrong = junk if type(junk) is not type(item[key]) else [junk]
                item[key] = wrong if type(wrong) is not type(item[key]) else {"x": junk}
            else:
                items[index % len(items)] = junk
        return value

    return apply


def _count(connection: Any, table: Any, *where: Any) -> int:
    return connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _payloads(connection: Any) -> list[Any]:
    return [json.loads(p) for p in connection.execute(select(IngestionReject.payload)).scalars()]


def _stage_rows(connection: Any, number: int) -> int:
    joined = StageExecution.__table__.join(
        PipelineExecution.__table__, PipelineExecution.id == StageExecution.execution_id
    )
    return _count(connection, joined, PipelineExecution.sequence == number)


def _rejects(connection: Any) -> list[tuple[str, str, int]]:
    rows = connection.execute(
        select(IngestionReject.kind, IngestionReject.key, IngestionReject.times_seen)
    ).all()
    return sorted((kind, key, seen) for kind, key, seen in rows)


# -- Jenkins ------------------------------------------------------------------------------
class JenkinsPayloads:
    """Answers the Jenkins API calls the source makes, from mutated recorded payloads."""

    def __init__(self, builds: list[Any], runs: list[Any]) -> None:
        self.builds, self.runs, self.requests_made = builds, runs, 0

    def get_json(self, path: str, obj: str, params: dict | None = None) -> Any:
        self.requests_made += 1
        tree = (params or {}).get("tree", "")
        if path == "job/app/api/json" and tree.startswith("allBuilds"):
            return {"_class": "x", "allBuilds": self.builds}
        if path == "job/app/api/json":
            return {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": "app",
                    "fullName": "app", "url": "http://j/job/app/",
                    "lastBuild": {"number": BUILDS, "building": False}}  # fmt: skip
        if path == "job/app/wfapi/runs":
            return self.runs
        raise SourceNotFoundError("jenkins", obj, "not found (404)")  # describe: not kept


def jenkins_build(number: int) -> dict[str, Any]:
    data = copy.deepcopy(BUILD)
    data.update(number=number, id=str(number), timestamp=1_761_900_000_000 + number * 600_000,
                url=f"http://j/job/app/{number}/")  # fmt: skip
    return data


def jenkins_run(number: int) -> dict[str, Any]:
    data = copy.deepcopy(DESCRIBE)
    data.update(id=str(number), name=f"#{number}")
    return data


@st.composite
def jenkins_cases(draw: st.DrawFn) -> tuple[list[Any], list[Any], set[int], set[int]]:
    numbers = list(range(BUILDS, 0, -1))  # newest first, as Jenkins lists them
    bad_builds = draw(st.sets(st.sampled_from(numbers), max_size=3))
    bad_runs = draw(st.sets(st.sampled_from(numbers), max_size=3))
    builds = [
        draw(mutations(jenkins_build(n), "result"))(jenkins_build(n))
        if n in bad_builds
        else jenkins_build(n)
        for n in numbers
    ]
    stage = DESCRIBE["stages"][0]
    runs = []
    for n in numbers:
        run = jenkins_run(n)
        if n in bad_runs:
            target = draw(st.sampled_from(["run", "stage"]))
            if target == "run":
                run = draw(mutations(run, "status"))(run)
            else:
                at = draw(st.integers(0, len(run["stages"]) - 1))
                run["stages"][at] = draw(mutations(stage, "status"))(run["stages"][at])
        runs.append(run)
    return builds, runs, bad_builds, bad_runs


@PROPERTY
@given(case=jenkins_cases())
def test_mutated_jenkins_payloads(warehouse_url: str, case: tuple) -> None:
    builds, runs, bad_builds, bad_runs = case
    engine = get_engine(warehouse_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            source = JenkinsSource(
                JenkinsAPI(JenkinsPayloads(builds, runs)),  # type: ignore[arg-type]
                ["app"],
                stages="all",
            )
            ingest_pipelines(connection, source)
            results = ingest_executions(connection, source, SINCE, UNTIL)
            stored = set(connection.execute(select(PipelineExecution.sequence)).scalars())
            rejects = _rejects(connection)
            payloads = _payloads(connection)
            for number, build in zip(range(BUILDS, 0, -1), builds, strict=True):
                if number not in bad_builds:  # left alone: stored
                    assert number in stored
                else:  # mangled: stored (under the number it now names) or rejected
                    assert (
                        number in stored
                        or build in payloads
                        or (isinstance(build, dict) and record_id(build, "number") in stored)
                    )
            for number, run in zip(range(BUILDS, 0, -1), runs, strict=True):
                if number not in stored:
                    continue  # a rejected build's stages are not read
                rows = _stage_rows(connection, number)
                if number not in bad_runs:
                    assert rows == len(DESCRIBE["stages"])
                else:  # stored, or rejected, or it named another build than its own
                    assert rows > 0 or run in payloads or record_id(run) != number
            assert results["ingestion_rejects"].offered == len(rejects)
            assert all(seen == 1 for _, _, seen in rejects)

            again = ingest_executions(connection, source, SINCE, UNTIL)  # a re-run
            assert [(k, key) for k, key, _ in _rejects(connection)] == [
                (k, key) for k, key, _ in rejects
            ]
            # builds are read again; stages of builds stored as finished are not (`final`)
            seen_again = _rejects(connection)
            assert all(seen == 2 for k, _, seen in seen_again if k == "build")
            assert all(seen in (1, 2) for _, _, seen in seen_again)
            assert set(connection.execute(select(PipelineExecution.sequence)).scalars()) == stored
            builds_rejected = sum(1 for k, _, _ in rejects if k == "build")
            assert builds_rejected <= again["ingestion_rejects"].offered <= len(rejects)
        finally:
            transaction.rollback()


# -- GitLab -------------------------------------------------------------------------------
PIPELINES = (101, 102, 103, 104)
JOBS_PER_PIPELINE = 2


class GitLabPayloads:
    """Answers the GitLab API calls the source makes, from mutated recorded payloads."""

    def __init__(self, pipelines: list[Any], jobs: list[Any]) -> None:
        self.pipelines, self.jobs, self.requests_made = pipelines, jobs, 0

    def get(self, path: str, obj: str, **query: Any) -> dict[str, Any]:
        self.requests_made += 1
        return dict(PROJECT, id=7, path="app", path_with_namespace="shop/app")

    def pages(self, path: str, obj: str, objects_only: bool = True, **query: Any) -> Any:
        self.requests_made += 1
        return iter(self.pipelines if path.endswith("/pipelines") else self.jobs)


def gitlab_pipeline(pipeline_id: int) -> dict[str, Any]:
    created = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(hours=pipeline_id - 100)
    return dict(PIPELINE, id=pipeline_id, created_at=created.isoformat().replace("+00:00", "Z"))


def gitlab_job(job_id: int) -> dict[str, Any]:
    pipeline_id = PIPELINES[(job_id - 1000) // JOBS_PER_PIPELINE]
    data = copy.deepcopy(JOB)
    data.update(id=job_id, name=f"job-{job_id % JOBS_PER_PIPELINE}")
    data["pipeline"] = dict(data["pipeline"], id=pipeline_id)
    return data


JOB_IDS = tuple(range(1000, 1000 + len(PIPELINES) * JOBS_PER_PIPELINE))


@st.composite
def gitlab_cases(draw: st.DrawFn) -> tuple[list[Any], list[Any], set[int], set[int]]:
    bad_pipelines = draw(st.sets(st.sampled_from(PIPELINES), max_size=2))
    bad_jobs = draw(st.sets(st.sampled_from(JOB_IDS), max_size=3))
    pipelines = [
        draw(mutations(gitlab_pipeline(p), "status"))(gitlab_pipeline(p))
        if p in bad_pipelines
        else gitlab_pipeline(p)
        for p in sorted(PIPELINES, reverse=True)
    ]
    jobs = [
        draw(mutations(gitlab_job(j), "status"))(gitlab_job(j)) if j in bad_jobs else gitlab_job(j)
        for j in sorted(JOB_IDS, reverse=True)  # newest first
    ]
    return pipelines, jobs, bad_pipelines, bad_jobs


def _job_stored(connection: Any, pipeline_id: int, job_id: int) -> bool:
    joined = StageExecution.__table__.join(
        PipelineExecution.__table__, PipelineExecution.id == StageExecution.execution_id
    )
    where = (PipelineExecution.sequence == pipeline_id, StageExecution.external_id == str(job_id))
    return _count(connection, joined, *where) == 1


@PROPERTY
@given(case=gitlab_cases())
def test_mutated_gitlab_payloads(warehouse_url: str, case: tuple) -> None:
    pipelines, jobs, bad_pipelines, bad_jobs = case
    engine = get_engine(warehouse_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            source = GitLabSource(GitLabPayloads(pipelines, jobs), ["shop/app"])  # type: ignore[arg-type]
            ingest_pipelines(connection, source)
            ingest_executions(connection, source, SINCE, UNTIL)
            stored = set(connection.execute(select(PipelineExecution.sequence)).scalars())
            rejects = _rejects(connection)
            payloads = _payloads(connection)
            kept = payloads + [
                p["pipeline"] for p in payloads if isinstance(p, dict) and "jobs" in p
            ]
            for pipeline_id, pipeline in zip(
                sorted(PIPELINES, reverse=True), pipelines, strict=True
            ):
                if pipeline_id not in bad_pipelines:
                    assert pipeline_id in stored
                else:
                    assert (
                        pipeline_id in stored or pipeline in kept or (record_id(pipeline) in stored)
                    )
            for job_id, job in zip(sorted(JOB_IDS, reverse=True), jobs, strict=True):
                pipeline_id = PIPELINES[(job_id - 1000) // JOBS_PER_PIPELINE]
                if pipeline_id not in stored:
                    continue  # a rejected pipeline's jobs are not attributed
                if job_id not in bad_jobs:
                    assert _job_stored(connection, pipeline_id, job_id)
                else:
                    assert (
                        _job_stored(connection, pipeline_id, job_id)
                        or job in payloads
                        or (
                            record_id(job) is not None
                            and _job_stored(connection, pipeline_id, record_id(job))
                        )
                    )
            assert all(seen == 1 for _, _, seen in rejects)

            ingest_executions(connection, source, SINCE, UNTIL)  # a re-run
            again = _rejects(connection)
            assert [(k, key) for k, key, _ in again] == [(k, key) for k, key, _ in rejects]
            assert all(seen in (1, 2) for _, _, seen in again)
            assert set(connection.execute(select(PipelineExecution.sequence)).scalars()) == stored
        finally:
            transaction.rollback()
