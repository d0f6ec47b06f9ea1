"""Notices about delivery activity: executions that finished and deployments that finished,
read from the warehouse after a cursor time."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from timbel_dagster.notify.messages import Message

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

FINISHED = ("success", "failed", "aborted")


def finished_since(
    connection: Connection, since: dt.datetime, until: dt.datetime, limit: int = 200
) -> tuple[list[Message], dt.datetime]:
    """Messages for executions and deployments that completed in (since, until], oldest
    first, at most `limit` of each; and the time the next call should start from (the last
    one taken when the limit cut the list short, else `until`)."""
    from sqlalchemy import select

    from timbel_dagster.warehouse.models import Deployment, Pipeline, PipelineExecution

    executions = connection.execute(
        select(PipelineExecution, Pipeline.name, Pipeline.service)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(PipelineExecution.status.in_(FINISHED))
        .where(PipelineExecution.completed_at > since, PipelineExecution.completed_at <= until)
        .order_by(PipelineExecution.completed_at)
        .limit(limit)
    ).all()
    deployments = (
        connection.execute(
            select(Deployment)
            .where(Deployment.status.in_(("success", "failed", "rolled_back")))
            .where(Deployment.completed_at > since, Deployment.completed_at <= until)
            .order_by(Deployment.completed_at)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    messages = [_execution_message(e, name, service) for e, name, service in executions]
    messages += [_deployment_message(d) for d in deployments]
    cut = [rows[-1] for rows in (executions, deployments) if len(rows) == limit]
    if cut:
        ends = [getattr(row, "completed_at", None) or row[0].completed_at for row in cut]
        return messages, min(ends)
    return messages, until


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
