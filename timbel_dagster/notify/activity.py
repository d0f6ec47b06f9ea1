"""Notices about delivery activity: executions and deployments that finished, read from the
warehouse after a keyset mark on the time each row was written."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.messages import Message
from timbel_dagster.warehouse.schema.models import Deployment, Pipeline, PipelineExecution

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

FINISHED = ("success", "failed", "aborted")
DEPLOYMENT_FINISHED = ("success", "failed", "rolled_back")
Mark = tuple[dt.datetime, str]  # (updated_at, id) of the last row taken


def start_marks(now: dt.datetime) -> dict[str, Mark]:
    """Where a first tick starts: now, so history is not replayed."""
    return {"executions": (now, ""), "deployments": (now, "")}


def _page(connection: Connection, table: Any, statuses: tuple[str, ...], mark: Mark, limit: int):
    """Finished rows written (ingested or changed) after `mark`, in (updated_at, id) order.

    The mark is the warehouse's write time, not the completion time: a build ingested an
    hour after it finished is still noticed, and rows tied on the time are split by id."""
    from sqlalchemy import and_, or_, select

    at, last_id = mark
    after = table.c.updated_at > at
    if last_id:
        tie = and_(table.c.updated_at == at, table.c.id > uuid.UUID(last_id))
        after = or_(after, tie)
    rows = connection.execute(
        select(table)
        .where(table.c.status.in_(statuses), after)
        .order_by(table.c.updated_at, table.c.id)
        .limit(limit)
    ).mappings()
    return [SimpleNamespace(**row) for row in rows]


def finished_since(
    connection: Connection, marks: dict[str, Mark], limit: int = 200
) -> tuple[list[Message], dict[str, Mark]]:
    """Messages for executions and deployments that finished since `marks`, at most `limit`
    of each per call, and the marks to start from next time."""
    from sqlalchemy import select

    executions = _page(
        connection, PipelineExecution.__table__, FINISHED, marks["executions"], limit
    )
    deployments = _page(
        connection, Deployment.__table__, DEPLOYMENT_FINISHED, marks["deployments"], limit
    )
    pipelines = {
        row.id: (row.name, row.service)
        for row in connection.execute(
            select(Pipeline.id, Pipeline.name, Pipeline.service).where(
                Pipeline.id.in_({e.pipeline_id for e in executions})
            )
        )
    }
    messages = [
        _execution_message(e, *pipelines.get(e.pipeline_id, ("?", None))) for e in executions
    ]
    # Timbel's own deploys and rollbacks (source `timbel`) are announced by their jobs; the
    # mark still moves past them.
    messages += [_deployment_message(d) for d in deployments if d.source != "timbel"]
    next_marks = dict(marks)
    if executions:
        next_marks["executions"] = (executions[-1].updated_at, str(executions[-1].id))
    if deployments:
        next_marks["deployments"] = (deployments[-1].updated_at, str(deployments[-1].id))
    return messages, next_marks


def _execution_message(execution, pipeline: str, service: str | None) -> Message:
    failed = execution.status != "success"
    return Message(
        event="pipeline_failed" if failed else "pipeline_done",
        key=f"execution:{execution.id}:{execution.status}",
        title=f"{pipeline} #{execution.external_id} {execution.status}",
        severity="high" if failed else "info",
        context={
            "pipeline": pipeline,
            "service": service or "-",
            "build": execution.external_id,
            "branch": execution.branch or "-",
            "duration_s": round(execution.duration or 0),
            "error": (execution.error_message or "")[:300] or "-",
        },
        mentions=(execution.triggered_by,) if failed and execution.triggered_by else (),
        url=execution.url,
    )


def _deployment_message(deployment) -> Message:
    ok = deployment.status == "success"
    return Message(
        event="deployment_done",
        key=f"deployment:{deployment.id}:{deployment.status}",
        title=f"{deployment.service} {deployment.version or ''} to {deployment.environment}: "
        f"{deployment.status}".replace("  ", " "),
        severity="info" if ok else "high",
        context={
            "service": deployment.service,
            "environment": deployment.environment,
            "cluster": deployment.cluster or "-",
            "image": deployment.image or "-",
            "status": deployment.status,
        },
        mentions=(deployment.triggered_by,) if deployment.triggered_by else (),
    )
