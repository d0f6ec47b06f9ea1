"""Following logs: byte-identical storage across disconnects, live emission, resumption."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from sqlalchemy import select

from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.jenkins_server import FakeBuild, FakeJenkins
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.builds import follow_build, trigger_build
from timbel_dagster.jobs.follow import follow_gitlab_logs, follow_jenkins_log
from timbel_dagster.jobs.record import store_build
from timbel_dagster.jobs.run_actor import acting_as
from timbel_dagster.resources.errors import TransientSourceError
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import ExecutionLog, PipelineExecution, StageExecution
from timbel_dagster.warehouse.store.logs import LogWriter, read_log

JOB = "shop/api/main"


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    server.add_job(JOB, builds=3, first_timestamp=int(time.time() * 1000) - 3_600_000)
    server.start()
    yield server
    server.stop()


def _lines(start: int, count: int) -> bytes:
    return b"".join(
        f"[{n:05d}] step output \u2713 {'x' * (n % 40)}\n".encode()
        for n in range(start, start + count)
    )


class GrowingBuild:
    """Stands in for time passing: each poll's sleep adds lines, then the build ends."""

    def __init__(self, build: FakeBuild, polls: int, lines_per_poll: int = 500) -> None:
        self.build, self.polls, self.lines_per_poll, self.done = build, polls, lines_per_poll, 0

    def sleep(self, _seconds: float) -> None:
        self.done += 1
        self.build.log += _lines(self.done * self.lines_per_poll, self.lines_per_poll)
        if self.done >= self.polls:
            self.build.log += b"Finished: SUCCESS"  # Jenkins' last line has no newline
            self.build.building = False


def _execution(url: str, server: FakeJenkins, number: int):
    source = JenkinsResource(
        url=server.url,
        user=server.user,
        token=server.token,
        jobs=[JOB],
        retry_backoff_seconds=0,
    ).source()
    record = source.pipeline(JOB)
    execution = source.execution(JOB, number, read_stages=False)
    import uuid

    return source, uuid.UUID(
        store_build(get_engine(url), "jenkins", record, execution, "tester", "build.follow")
    )


def test_log_is_stored_byte_for_byte_across_dropped_connections(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    build = jenkins.add_build(JOB, building=True, result=None)
    build.log += _lines(0, 300)
    growing = GrowingBuild(build, polls=4)
    # drop the connection part-way through three different reads
    jenkins.cut_log_after.extend([1000, 5000, 777])
    source, execution_id = _execution(warehouse_url, jenkins, build.number)
    emitted: list[str] = []
    report = follow_jenkins_log(
        source.api,
        get_engine(warehouse_url),
        execution_id,
        JOB,
        build.number,
        emitted.append,
        sleep=growing.sleep,
        chunk_bytes=4096,
    )
    assert report.reconnects == 3
    with get_engine(warehouse_url).connect() as connection:
        stored = "".join(read_log(connection, execution_id)).encode()
        state = connection.execute(select(ExecutionLog.size, ExecutionLog.complete)).one()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(bytes(build.log)).hexdigest()
    assert state == (len(build.log), True)
    assert any("Finished: SUCCESS" in text for text in emitted)
    assert sum(1 for t in emitted if t.startswith("[timbel] connection lost")) == 3


def test_a_new_follower_resumes_where_the_stored_log_ends(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    build = jenkins.add_build(JOB, building=True, result=None)
    build.log += _lines(0, 100) + b"half a li"
    source, execution_id = _execution(warehouse_url, jenkins, build.number)
    engine = get_engine(warehouse_url)
    # the first follower stores the whole lines, then its process dies
    first = LogWriter(engine, execution_id)
    with source.api.log_stream(JOB, build.number, 0) as stream:
        for block in stream.blocks:
            first.write(block)
    first.flush()
    assert first.stored == len(_lines(0, 100))
    build.log += b"ne\n" + _lines(100, 10)
    build.building = False
    follow_jenkins_log(
        source.api, engine, execution_id, JOB, build.number, lambda _t: None, sleep=lambda _s: None
    )
    with engine.connect() as connection:
        assert "".join(read_log(connection, execution_id)).encode() == bytes(build.log)
    starts = [q for _, p, q in jenkins.requests if p.endswith("progressiveText")]
    assert starts[-1] == f"start={len(_lines(0, 100))}"


def test_too_many_failures_in_a_row_give_up(jenkins: FakeJenkins, warehouse_url: str) -> None:
    build = jenkins.add_build(JOB, building=True, result=None)
    source, execution_id = _execution(warehouse_url, jenkins, build.number)
    jenkins.fail_next(100, status=503, path_contains="progressiveText")
    with pytest.raises(TransientSourceError):
        follow_jenkins_log(
            source.api,
            get_engine(warehouse_url),
            execution_id,
            JOB,
            build.number,
            lambda _t: None,
            sleep=lambda _s: None,
        )


def _resources(
    url: str, jenkins: FakeJenkins | None = None, gitlab: FakeGitLab | None = None
) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=url),
        "jenkins": JenkinsResource(
            url=jenkins.url if jenkins else None,
            user=jenkins.user if jenkins else None,
            token=jenkins.token if jenkins else None,
            jobs=[],
            retry_backoff_seconds=0,
        ),
        "gitlab": GitLabResource(
            url=gitlab.url if gitlab else None,
            token=gitlab.token if gitlab else None,
            projects=[],
            max_requests_per_second=1000,
        ),
    }


def test_follow_build_job_streams_into_the_run_log_and_records_the_end(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    build = jenkins.add_build(JOB, building=True, result=None, finish_after_reads=3)
    build.log += b"Started by user minji.kim\nRunning on agent-7\n"
    instance = dg.DagsterInstance.ephemeral()
    result = follow_build.execute_in_process(
        run_config={
            "ops": {
                "follow": {
                    "config": {
                        "system": "jenkins",
                        "pipeline": JOB,
                        "build": build.number,
                        "poll_seconds": 0,
                    }
                }
            }
        },
        resources=_resources(warehouse_url, jenkins),
        instance=instance,
    )
    assert result.success
    report = result.output_for_node("follow")
    assert report["status"] == "success" and report["bytes_stored"] == len(build.log)
    texts = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("Started by user minji.kim\nRunning on agent-7" in t for t in texts)
    with get_engine(warehouse_url).connect() as connection:
        status = connection.execute(select(PipelineExecution.status)).scalars().all()
        stages = connection.execute(select(StageExecution.name)).scalars().all()
    assert status == ["success"] and "integration-tests" in stages


def test_follow_build_run_log_has_the_log_text(jenkins: FakeJenkins, warehouse_url: str) -> None:
    build = jenkins.add_build(JOB, building=False)
    build.log += b"compiling 42 modules\nBUILD SUCCESSFUL\n"
    instance = dg.DagsterInstance.ephemeral()
    result = follow_build.execute_in_process(
        run_config={
            "ops": {
                "follow": {"config": {"system": "jenkins", "pipeline": JOB, "build": build.number}}
            }
        },
        resources=_resources(warehouse_url, jenkins),
        instance=instance,
    )
    assert result.success
    texts = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("compiling 42 modules\nBUILD SUCCESSFUL" in t for t in texts)
    assert any(t.startswith("[timbel] following jenkins shop/api/main") for t in texts)


def test_gitlab_pipeline_logs_per_job(warehouse_url: str) -> None:
    gitlab = FakeGitLab()
    project_id = gitlab.add_project("commerce/checkout-web")
    pipeline = gitlab.add_pipeline(project_id, dt.datetime.now(dt.UTC), status="running")
    for job in pipeline.jobs:
        job.trace += f"$ make {job.name}\n".encode()
    gitlab.start()
    try:

        def finish(_seconds: float) -> None:
            for job in pipeline.jobs:
                job.trace += b"Job succeeded\n"
                job.status = "success"
            pipeline.status = "success"

        resource = GitLabResource(
            url=gitlab.url,
            token=gitlab.token,
            projects=["commerce/checkout-web"],
            max_requests_per_second=1000,
        )
        source = resource.source()
        record = source.pipeline("commerce/checkout-web")
        import uuid

        execution_id = uuid.UUID(
            store_build(
                get_engine(warehouse_url),
                "gitlab",
                record,
                source.execution("commerce/checkout-web", pipeline.id),
                "tester",
                "build.follow",
            )
        )
        report = follow_gitlab_logs(
            source,
            get_engine(warehouse_url),
            execution_id,
            "commerce/checkout-web",
            pipeline.id,
            lambda _t: None,
            sleep=finish,
        )
        assert report.streams == 4
        with get_engine(warehouse_url).connect() as connection:
            for job in pipeline.jobs:
                text = "".join(read_log(connection, execution_id, str(job.id)))
                assert text.encode() == bytes(job.trace)
    finally:
        gitlab.stop()


def test_gitlab_jobs_ending_in_a_status_gitlab_added_end_the_follow(warehouse_url: str) -> None:
    """A job status outside GitLab's documented list (a newer GitLab, or none at all) is not
    waited on forever: the job has ended once GitLab gives it a `finished_at`."""
    import uuid

    gitlab = FakeGitLab()
    project_id = gitlab.add_project("commerce/checkout-web")
    pipeline = gitlab.add_pipeline(project_id, dt.datetime.now(dt.UTC), status="running")
    gitlab.start()
    polls = []
    try:

        def finish(_seconds: float) -> None:
            polls.append(1)
            assert len(polls) < 20, "still following a pipeline whose jobs have all finished"
            for job in pipeline.jobs:
                job.trace += b"Job ended\n"
                job.status = "some_future_status"
            pipeline.status = "some_future_status"

        source = GitLabResource(
            url=gitlab.url,
            token=gitlab.token,
            projects=["commerce/checkout-web"],
            max_requests_per_second=1000,
        ).source()
        record = source.pipeline("commerce/checkout-web")
        current = source.execution("commerce/checkout-web", pipeline.id)
        engine = get_engine(warehouse_url)
        execution_id = uuid.UUID(
            store_build(engine, "gitlab", record, current, "tester", "build.follow")
        )
        report = follow_gitlab_logs(
            source,
            engine,
            execution_id,
            "commerce/checkout-web",
            pipeline.id,
            lambda _t: None,
            sleep=finish,
        )
        assert report.streams == len(pipeline.jobs)
        with engine.connect() as connection:
            for job in pipeline.jobs:
                text = "".join(read_log(connection, execution_id, str(job.id)))
                assert text.encode() == bytes(job.trace)
    finally:
        gitlab.stop()


def test_trigger_build_job_queues_with_parameters_then_follows(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    jenkins.start_queued_builds = True
    instance = dg.DagsterInstance.ephemeral()
    with acting_as("minji.kim"):  # as `timbel build trigger` runs it
        result = trigger_build.execute_in_process(
            run_config={
                "ops": {
                    "trigger_and_follow": {
                        "config": {
                            "system": "jenkins",
                            "pipeline": JOB,
                            "parameters": {"VERSION": "1.4.2"},
                            "poll_seconds": 0,
                        }
                    }
                }
            },
            resources=_resources(warehouse_url, jenkins),
            instance=instance,
            tags={"timbel/actor": "minji.kim"},
        )
    assert result.success
    [(job, parameters)] = jenkins.queue.values()
    assert job == JOB and parameters["VERSION"] == "1.4.2"
    report = result.output_for_node("trigger_and_follow")
    assert report["build"] == int(parameters["_number"]) and report["status"] == "success"
    texts = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("Started with {'VERSION': '1.4.2'}" in t for t in texts)
    from timbel_dagster.warehouse.schema.models import AuditEvent

    with get_engine(warehouse_url).connect() as connection:
        actions = connection.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert ("minji.kim", "build.trigger") in actions


def test_trigger_a_gitlab_pipeline_with_variables(warehouse_url: str) -> None:
    gitlab = FakeGitLab()
    gitlab.add_project("commerce/checkout-web", pipelines=1, first=dt.datetime.now(dt.UTC))
    gitlab.start()
    try:
        created: list[dict] = []
        original = gitlab.add_pipeline

        def recording(
            project_id: int, created_at: dt.datetime, status: str = "success", **values: object
        ):
            pipeline = original(project_id, created_at, status, **values)
            created.append({"id": pipeline.id, "ref": pipeline.ref})
            return pipeline

        gitlab.add_pipeline = recording  # type: ignore[method-assign]
        resources = _resources(warehouse_url, gitlab=gitlab)
        resources["gitlab"] = GitLabResource(
            url=gitlab.url,
            token=gitlab.token,
            projects=["commerce/checkout-web"],
            max_requests_per_second=1000,
        )
        result = trigger_build.execute_in_process(
            run_config={
                "ops": {
                    "trigger_and_follow": {
                        "config": {
                            "system": "gitlab",
                            "pipeline": "commerce/checkout-web",
                            "parameters": {"DEPLOY_ENV": "staging"},
                            "poll_seconds": 0,
                        }
                    }
                }
            },
            resources=resources,
        )
        assert result.success
        [pipeline] = created
        assert pipeline["ref"] == "main"  # the project's default branch
        posts = [p for m, p, _ in gitlab.requests if m == "POST"]
        assert posts == ["/api/v4/projects/commerce%2Fcheckout-web/pipeline"]
        assert result.output_for_node("trigger_and_follow")["build"] == pipeline["id"]
    finally:
        gitlab.stop()
