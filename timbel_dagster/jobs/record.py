"""Following and triggering one build, recorded in the warehouse. Plain functions.

`follow_build` stores the build's row first (so its log has a parent), streams the log, then
stores the build again as it ended, with its stages. `trigger_build` starts a build the way
each server expects and hands it to `follow_build`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from timbel_dagster.jobs.follow import Emit, follow_gitlab_logs, follow_jenkins_log
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.resources.gitlab.client import project_ref
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.models import PipelineExecution
from timbel_dagster.warehouse.store import loaders
from timbel_dagster.warehouse.store.logs import log_tail

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord

SYSTEMS = ("jenkins", "gitlab")


def store_build(
    engine: Engine,
    source: str,
    pipeline: PipelineRecord,
    execution: ExecutionRecord,
    actor: str,
    action: str,
    audit_details: Mapping[str, Any] | None = None,
) -> str:
    """Store one pipeline and one execution (with stages) and the audit event, together
    (`audit_details` added to the event's: how an unverified run was launched)."""

    with engine.begin() as connection:
        loaders.store_pipelines(connection, source, [pipeline])
        loaders.store_executions(connection, source, [execution])
        append_event(
            connection,
            actor=actor,
            action=action,
            target=f"{source} {pipeline.name} #{execution.external_id}",
            details={"status": execution.status, **(audit_details or {})},
        )
    return str(loaders.execution_id(source, execution.pipeline, execution.external_id))


LOG_TAIL_CHARS = 64 * 1024


def _store_tail(engine: Engine, execution_id: Any) -> None:
    """Keep the end of the log on the execution row (`logs`), for quick display; the whole
    log stays in `execution_log_chunks`."""
    from sqlalchemy import update

    with engine.begin() as connection:
        tail = log_tail(connection, execution_id, LOG_TAIL_CHARS)
        connection.execute(
            update(PipelineExecution).where(PipelineExecution.id == execution_id).values(logs=tail)
        )


def follow_build(
    system: str,
    source: Any,
    engine: Engine,
    pipeline: str,
    build: int,
    emit: Emit,
    actor: str,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 2.0,
    audit_details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Follow a Jenkins build or GitLab pipeline to its end; returns what was stored."""
    import uuid

    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(SYSTEMS)}, not {system!r}")
    record = source.pipeline(pipeline)
    if system == "jenkins":
        current = source.execution(record.name, build, read_stages=False)
    else:
        current = source.execution(pipeline, build)
    execution_id = uuid.UUID(
        store_build(engine, system, record, current, actor, "build.follow", audit_details)
    )
    emit(f"[timbel] following {system} {record.name} #{build} ({current.status})")
    if system == "jenkins":
        report = follow_jenkins_log(
            source.api,
            engine,
            execution_id,
            record.name,
            build,
            emit,
            sleep=sleep,
            poll_seconds=poll_seconds,
        )
        final = source.execution(record.name, build)
    else:
        report = follow_gitlab_logs(
            source,
            engine,
            execution_id,
            pipeline,
            build,
            emit,
            sleep=sleep,
            poll_seconds=poll_seconds,
        )
        final = source.execution(pipeline, build)
    store_build(engine, system, record, final, actor, "build.recorded", audit_details)
    _store_tail(engine, execution_id)
    emit(
        f"[timbel] {system} {record.name} #{build} ended {final.status}: "
        f"{report.bytes_stored} bytes in {report.lines} lines stored"
    )
    return {
        "system": system,
        "pipeline": record.name,
        "build": build,
        "status": final.status,
        "execution_id": str(execution_id),
        **asdict(report),
    }


def trigger_build(
    system: str,
    source: Any,
    pipeline: str,
    parameters: dict[str, str],
    ref: str | None,
    emit: Emit,
    sleep: Callable[[float], None] = time.sleep,
    queue_timeout_seconds: float = 600.0,
) -> int:
    """Start a build; returns its build number (Jenkins) or pipeline id (GitLab)."""
    if system == "jenkins":
        item = source.api.trigger(pipeline, parameters)
        emit(f"[timbel] queued {pipeline} as queue item {item}")
        waited = 0.0
        while (number := source.api.queued_build(item)) is None:
            if waited >= queue_timeout_seconds:
                raise SourceError(
                    "jenkins",
                    f"queue item {item}",
                    f"still waiting for an executor after {waited:.0f}s",
                )
            sleep(2.0)
            waited += 2.0
        return number
    if system == "gitlab":
        branch = ref or source.pipeline(pipeline).default_branch or "main"
        created = source.http.post(
            f"/projects/{project_ref(pipeline)}/pipeline",
            f"project {pipeline}",
            {"ref": branch, "variables": [{"key": k, "value": v} for k, v in parameters.items()]},
        )
        emit(f"[timbel] created pipeline {created.get('id')} on {branch}")
        return int(created["id"])
    raise ValueError(f"system must be one of {', '.join(SYSTEMS)}, not {system!r}")
