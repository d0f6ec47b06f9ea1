"""`jenkins_build_sensor` and `gitlab_pipeline_sensor`: one run per batch of new builds,
high-water marks confirmed by the warehouse.

A tick costs one request to Jenkins (the job list with each job's last build number) or one per
GitLab project (its newest pipeline), and one indexed warehouse query over the builds above
the marks, whatever the history's size.
"""

# No `from __future__ import annotations`: Dagster reads the sensor's resource annotations.
import datetime as dt
from typing import Any

import dagster as dg

from timbel_dagster.assets.cicd.executions import CI_SYSTEMS_TAG
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.builds import follow_build
from timbel_dagster.jobs.definitions import ci_ingestion_job
from timbel_dagster.partitions import range_tags
from timbel_dagster.resources.gitlab.source import GitLabResource
from timbel_dagster.resources.jenkins.source import JenkinsResource
from timbel_dagster.sensors.marks import BuildCursor, Decision, confirm, plan
from timbel_dagster.warehouse.engine import get_engine

_ENDED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# A requested run that never appears (refused by the daemon, instance wiped) stops blocking
# the next batch after this long.
LAUNCH_TIMEOUT = dt.timedelta(minutes=15)


def _batch_state(instance: dg.DagsterInstance, cursor: BuildCursor, now: dt.datetime) -> str:
    """`running` while the pending batch's run has not ended, else `ended`."""
    assert cursor.pending is not None
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={"dagster/run_key": cursor.pending.run_key}), limit=1
    )
    if records:
        return "ended" if records[0].dagster_run.status in _ENDED else "running"
    requested = dt.datetime.fromisoformat(cursor.pending.requested_at)
    return "ended" if now - requested > LAUNCH_TIMEOUT else "running"


def build_tick(
    system: str,
    latest: dict[str, int],
    cursor: BuildCursor,
    instance: dg.DagsterInstance,
    warehouse: WarehouseResource,
    now: dt.datetime,
) -> Decision:
    """Confirm the pending batch if its run has ended, then plan the next one."""
    confirmed: dict[str, int] = {}
    if cursor.pending is not None:
        if _batch_state(instance, cursor, now) == "running":
            return Decision(
                cursor,
                skip_reason=(
                    f"waiting for run {cursor.pending.run_key} "
                    f"({len(cursor.pending.upto)} {system} pipelines)"
                ),
            )
        # lazy: warehouse.read.queries loads SQLAlchemy; the code location loads without it
        from timbel_dagster.warehouse.read.queries import stored_marks

        with get_engine(warehouse.url(), read_only=True).connect() as connection:
            stored = stored_marks(
                connection, system, {p: cursor.marks.get(p, 0) for p in cursor.pending.upto}
            )
        confirmed = confirm(cursor, stored)
    decision = plan(system, latest, cursor, now)
    return Decision(
        decision.cursor,
        decision.run_key,
        decision.days,
        decision.builds,
        decision.skip_reason,
        confirmed,
    )


def follow_requests(system: str, running: dict[str, int]) -> list[dg.RunRequest]:
    """A `follow_build` run for each build that is running now; its run key makes it once."""
    return [
        dg.RunRequest(
            job_name="follow_build",
            run_key=f"follow-{system}-{pipeline}-{build}",
            run_config={
                "ops": {
                    "follow": {"config": {"system": system, "pipeline": pipeline, "build": build}}
                }
            },
        )
        for pipeline, build in sorted(running.items())
    ]


def to_sensor_result(
    system: str, decision: Decision, log: Any, running: dict[str, int] | None = None
) -> dg.SensorResult:
    if decision.confirmed:
        log.info(f"confirmed {len(decision.confirmed)} pipelines stored up to their new marks")
    requests = follow_requests(system, running or {})
    if decision.run_key is not None:
        assert decision.days is not None
        log.info(
            f"{decision.builds} new {system} builds: run {decision.run_key} "
            f"for days {decision.days[0]} to {decision.days[1]}"
        )
        requests.insert(
            0,
            dg.RunRequest(
                run_key=decision.run_key,
                job_name=ci_ingestion_job.name,
                tags=range_tags(*decision.days) | {CI_SYSTEMS_TAG: system},
            ),
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=decision.cursor.to_json(),
        skip_reason=None if requests else decision.skip_reason,
    )


@dg.sensor(
    jobs=[ci_ingestion_job, follow_build],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Ingest new Jenkins builds: one run per batch, high-water marks per job.",
)
def jenkins_build_sensor(
    context: dg.SensorEvaluationContext,
    jenkins: JenkinsResource,
    warehouse: WarehouseResource,
) -> dg.SensorResult | dg.SkipReason:
    if not jenkins.configured():
        return dg.SkipReason("Jenkins is not configured (JENKINS_URL is not set)")
    source = jenkins.source()
    latest = {job.full_name: job.last_build for job in source.jobs if job.last_build}
    running = {
        job.full_name: job.last_build for job in source.jobs if job.last_build and job.last_building
    }
    decision = build_tick(
        "jenkins",
        latest,
        BuildCursor.from_json(context.cursor),
        context.instance,
        warehouse,
        dt.datetime.now(dt.UTC),
    )
    return to_sensor_result("jenkins", decision, context.log, running)


@dg.sensor(
    jobs=[ci_ingestion_job, follow_build],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Ingest new GitLab pipelines: one run per batch, high-water marks per project.",
)
def gitlab_pipeline_sensor(
    context: dg.SensorEvaluationContext,
    gitlab: GitLabResource,
    warehouse: WarehouseResource,
) -> dg.SensorResult | dg.SkipReason:
    if not gitlab.configured():
        return dg.SkipReason("GitLab is not configured (GITLAB_URL is not set)")
    newest = gitlab.source().newest_pipelines()
    latest = {project: pipeline_id for project, (pipeline_id, _status) in newest.items()}
    running = {
        project: pipeline_id
        for project, (pipeline_id, status) in newest.items()
        if status == "running"
    }
    decision = build_tick(
        "gitlab",
        latest,
        BuildCursor.from_json(context.cursor),
        context.instance,
        warehouse,
        dt.datetime.now(dt.UTC),
    )
    return to_sensor_result("gitlab", decision, context.log, running)
