"""`cicd/pipeline_executions` against the fake Jenkins and GitLab serving odd records: every
other record stored, each unparsable one in `ingestion_rejects` once, counted in metadata."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.jenkins_server import FakeJenkins
from tests.test_cli import invoke
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.cli.timeline import stage_timeline
from timbel_dagster.definitions import build_definitions
from timbel_dagster.jobs.history import OP
from timbel_dagster.partitions import range_tags
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.read.history import add_stage_offsets
from timbel_dagster.warehouse.read.queries import get_execution
from timbel_dagster.warehouse.schema.ingestion import IngestionReject
from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution, StageExecution

HOUR_MS = 3_600_000
FLOW_INTERRUPTED = "org.jenkinsci.plugins.workflow.steps.FlowInterruptedException"


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    server = FakeJenkins()
    now_ms = int(time.time() * 1000)
    server.add_job("shop/api/main", builds=4, first_timestamp=now_ms - 20 * HOUR_MS)
    server.add_job("shop/web/main", builds=3, first_timestamp=now_ms - 10 * HOUR_MS)
    server.add_build("shop/api/main", interrupted=True, result="ABORTED")  # 5
    server.add_build("shop/api/main", result="CUSTOM_RESULT")  # 6
    server.add_build("shop/api/main", raw={"number": None})  # (7) unparsable: no number
    server.add_build("shop/web/main", raw={"timestamp": "yesterday"})  # 4: unparsable
    server.start()
    yield server
    server.stop()


def code_location_assets() -> list:
    return list(build_definitions().assets or [])


def materialize(resources: dict, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    today = dt.datetime.now(dt.UTC).date()
    return dg.materialize(
        code_location_assets(),
        instance=instance,
        resources=resources,
        selection=[
            dg.AssetKey(["cicd", "pipelines"]),
            dg.AssetKey(["cicd", "pipeline_executions"]),
            dg.AssetKey(["cicd", "stage_executions"]),
        ],
        tags=range_tags((today - dt.timedelta(days=2)).isoformat(), today.isoformat()),
    )


def rejected_counts(result: dg.ExecuteInProcessResult) -> dict[str, set[int]]:
    """`rows_rejected` of each asset's materializations (one per partition of the range)."""
    counts: dict[str, set[int]] = {}
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "rows_rejected" in metadata:
            key = event.materialization.asset_key.to_user_string()
            counts.setdefault(key, set()).add(metadata["rows_rejected"].value)
    return counts


BOTH_TWO = {"cicd/pipelines": {0}, "cicd/pipeline_executions": {2}, "cicd/stage_executions": {2}}


def test_jenkins_odd_builds_are_stored_or_rejected_once(
    jenkins: FakeJenkins, warehouse_url: str
) -> None:
    jenkins_resource = JenkinsResource(
        url=jenkins.url, user=jenkins.user, token=jenkins.token, jobs=[], stages="all"
    )
    resources = {
        "warehouse": WarehouseResource(database_url=warehouse_url),
        "sources": DeliverySourcesResource(
            mode="live", systems=["jenkins"], jenkins=jenkins_resource
        ),
    }
    instance = dg.DagsterInstance.ephemeral()
    first = materialize(resources, instance)
    assert first.success
    assert rejected_counts(first) == BOTH_TWO  # on both tables' materializations

    with get_engine(warehouse_url).connect() as connection:
        stored = connection.execute(
            select(Pipeline.name, PipelineExecution.sequence, PipelineExecution.status,
                   PipelineExecution.error_message)
            .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
            .order_by(Pipeline.name, PipelineExecution.sequence)
        ).all()  # fmt: skip
        interrupted = connection.execute(
            select(StageExecution.name, StageExecution.status, StageExecution.error_message)
            .join(PipelineExecution, PipelineExecution.id == StageExecution.execution_id)
            .where(PipelineExecution.external_id == "5")
            .order_by(StageExecution.position)
        ).all()
        artifacts = connection.execute(
            select(PipelineExecution.artifacts).where(PipelineExecution.external_id == "6")
        ).scalar_one()
        rejects = connection.execute(
            select(
                IngestionReject.source,
                IngestionReject.kind,
                IngestionReject.pipeline,
                IngestionReject.key,
                IngestionReject.reason,
                IngestionReject.times_seen,
            ).order_by(IngestionReject.pipeline)
        ).all()
    assert [(name, seq, status) for name, seq, status, _ in stored] == [
        ("shop/api/main", 1, "success"),
        ("shop/api/main", 2, "success"),
        ("shop/api/main", 3, "success"),
        ("shop/api/main", 4, "success"),
        ("shop/api/main", 5, "aborted"),
        ("shop/api/main", 6, "unknown"),
        ("shop/web/main", 1, "success"),
        ("shop/web/main", 2, "success"),
        ("shop/web/main", 3, "success"),
    ]
    assert stored[5][3] == "unknown build result 'CUSTOM_RESULT'"
    assert interrupted == [
        ("Checkout", "success", None),
        ("Build", "unknown", "no stage status; Aborted by Minji Kim"),
        ("Publish", "skipped", None),
    ]
    assert [f["name"] for f in artifacts["files"]] == ["payments-api-1.4.2.jar", "sbom.cdx.json"]
    assert artifacts["files"][0]["url"] == (
        f"{jenkins.url}job/shop/job/api/job/main/6/artifact/target/payments-api-1.4.2.jar"
    )
    [(source, kind, pipeline, key, reason, seen), web] = rejects
    assert (source, kind, pipeline, key[:5], seen) == (
        "jenkins",
        "build",
        "shop/api/main",
        "sha1:",
        1,
    )
    assert reason == "jenkins shop/api/main: field 'allBuilds[0].number': missing"
    assert web == (
        "jenkins",
        "build",
        "shop/web/main",
        "4",
        "jenkins shop/web/main: field 'allBuilds[0].timestamp': expected int, got str 'yesterday'",
        1,
    )

    with get_engine(warehouse_url).connect() as connection:  # what `executions show` prints
        execution_id = connection.execute(
            select(PipelineExecution.id).where(PipelineExecution.external_id == "5")
        ).scalar_one()
        shown = get_execution(connection, str(execution_id))
    assert shown is not None
    add_stage_offsets(shown)
    [build_line] = [line for line in stage_timeline(shown) if "Build" in line]
    assert [line.split("|")[0].strip() for line in stage_timeline(shown)] == [
        "Checkout",
        "Build",
        "Publish",
    ]
    assert build_line.endswith("unknown   2m 45s  no stage status; Aborted by Minji Kim")

    second = materialize(resources, instance)  # re-run: no second row for either reject
    assert second.success and rejected_counts(second) == BOTH_TWO
    with get_engine(warehouse_url).connect() as connection:
        again = connection.execute(
            select(IngestionReject.key, IngestionReject.times_seen).order_by(
                IngestionReject.pipeline
            )
        ).all()
        count = len(connection.execute(select(PipelineExecution.id)).all())
    assert [seen for _, seen in again] == [2, 2] and count == 9


def test_gitlab_odd_pipelines_and_jobs_are_stored_or_rejected_once(warehouse_url: str) -> None:
    server = FakeGitLab()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    project = server.add_project("shop/checkout", pipelines=3, first=now - dt.timedelta(hours=6))
    odd = server.add_pipeline(project, created=now - dt.timedelta(hours=2), status="new_status")
    odd.jobs[0].raw = {"duration": "four minutes"}  # a job rejected; the pipeline kept
    odd.jobs[1].artifacts_expire_at = now + dt.timedelta(days=30)
    broken = server.add_pipeline(project, created=now - dt.timedelta(hours=1))
    broken.raw = {"sha": 123}  # the pipeline itself cannot be parsed
    server.start()
    try:
        gitlab = GitLabResource(url=server.url, token=server.token, projects=["shop/checkout"])
        resources = {
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "sources": DeliverySourcesResource(mode="live", systems=["gitlab"], gitlab=gitlab),
        }
        instance = dg.DagsterInstance.ephemeral()
        first = materialize(resources, instance)
        second = materialize(resources, instance)
    finally:
        server.stop()
    assert first.success and rejected_counts(first) == BOTH_TWO == rejected_counts(second)
    with get_engine(warehouse_url).connect() as connection:
        stored = connection.execute(
            select(PipelineExecution.sequence, PipelineExecution.status,
                   PipelineExecution.error_message, PipelineExecution.artifacts)
            .order_by(PipelineExecution.sequence)
        ).all()  # fmt: skip
        rejects = connection.execute(
            select(IngestionReject.kind, IngestionReject.key, IngestionReject.times_seen)
            .order_by(IngestionReject.kind)
        ).all()  # fmt: skip
    assert [s for s, *_ in stored] == [p.id for p in server.pipelines[project][:4]]
    *_, (_, status, error, artifacts) = stored
    assert (status, error) == ("unknown", "unknown status 'new_status'")
    assert [f["job"] for f in artifacts["files"]] == [j.name for j in odd.jobs[1:]]
    assert artifacts["files"][0]["expire_at"] is not None
    assert rejects == [("job", str(odd.jobs[0].id), 2), ("pipeline", str(broken.id), 2)]


def test_a_history_run_counts_its_rejects(jenkins: FakeJenkins, warehouse_url: str) -> None:
    """`timbel ingest` runs `ci_history`: its report and metadata count the rejects too."""
    today = dt.datetime.now(dt.UTC).date()
    jenkins_resource = JenkinsResource(
        url=jenkins.url, user=jenkins.user, token=jenkins.token, jobs=[]
    )
    result = (
        build_definitions()
        .resolve_job_def("ci_history")
        .execute_in_process(
            run_config={
                "ops": {
                    OP: {
                        "config": {
                            "first_day": (today - dt.timedelta(days=2)).isoformat(),
                            "last_day": today.isoformat(),
                            "systems": ["jenkins"],
                        }
                    }
                }
            },
            instance=dg.DagsterInstance.ephemeral(),
            resources={
                "warehouse": WarehouseResource(database_url=warehouse_url),
                "sources": DeliverySourcesResource(
                    mode="live", systems=["jenkins"], jenkins=jenkins_resource
                ),
            },
        )
    )
    report = result.output_for_node(OP)
    assert report["rejected"] == 2
    assert report["pipeline_executions"]["offered"] == 9


def test_timbel_ingest_says_what_it_kept_aside(jenkins: FakeJenkins, tmp_path: Path) -> None:
    """The issue's case on the command line: a FlowInterruptedException stage (status null)
    and an unknown result are stored, the unparsable builds are counted, exit code 0."""
    env = {
        "JENKINS_URL": jenkins.url,
        "JENKINS_USER": jenkins.user,
        "JENKINS_TOKEN": jenkins.token,
        "TIMBEL_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
    }
    done = invoke(["ingest", "jenkins", "--since", "3d"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert "2 records could not be parsed: kept in ingestion_rejects" in done.stdout.splitlines()
    assert done.stderr == ""  # no Dagster lines
    with get_engine(env["TIMBEL_DATABASE_URL"]).connect() as connection:
        statuses = dict(
            connection.execute(
                select(PipelineExecution.external_id, PipelineExecution.status)
                .join(Pipeline)
                .where(Pipeline.name == "shop/api/main")
            ).all()
        )
    assert statuses["5"] == "aborted" and statuses["6"] == "unknown"
