"""Execution history summaries: duration percentiles per pipeline, stage offsets."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.read.queries import get_execution
from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, PostgreSQL's
    `percentile_cont`)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = (len(sorted_values) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def duration_percentiles(
    connection: Connection,
    pipelines: list[str] | None = None,
    since: dt.datetime | None = None,
    pipeline_ids: list[uuid.UUID] | None = None,
) -> list[dict[str, Any]]:
    """Per pipeline: finished executions, success rate and p50/p90/p99 duration (seconds).

    `pipelines` names, or `pipeline_ids` (exact where two sources share a name), limit
    which pipelines; `since`, which executions (by start)."""
    from sqlalchemy import select

    query = (
        select(Pipeline.name, PipelineExecution.duration, PipelineExecution.status)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(PipelineExecution.status.in_(("success", "failed", "aborted")))
    )
    if pipelines is not None:
        query = query.where(Pipeline.name.in_(pipelines))
    if pipeline_ids is not None:
        query = query.where(PipelineExecution.pipeline_id.in_(pipeline_ids))
    if since is not None:
        query = query.where(PipelineExecution.started_at >= since)
    grouped: dict[str, tuple[list[float], list[str]]] = {}
    for name, duration, status in connection.execute(query):
        durations, statuses = grouped.setdefault(name, ([], []))
        statuses.append(status)
        if duration is not None:
            durations.append(duration)
    summary = []
    for name, (durations, statuses) in sorted(grouped.items()):
        durations.sort()
        row: dict[str, Any] = {
            "pipeline": name,
            "executions": len(statuses),
            "success_rate": round(statuses.count("success") / len(statuses), 4),
        }
        for p in PERCENTILES:
            row[f"p{p}_seconds"] = round(percentile(durations, p), 1) if durations else None
        summary.append(row)
    return summary


def add_stage_offsets(execution: dict[str, Any]) -> None:
    """Give each of the execution's stages its `offset_seconds`: when it started, counted from
    the start of the execution (None when either moment is unknown). The CLI draws the
    timeline from these."""
    start = execution.get("started_at")
    for stage in execution["stages"]:
        began = stage.get("started_at")
        offset = (began - start).total_seconds() if began and start else None
        stage["offset_seconds"] = round(offset, 1) if offset is not None else None


def execution_detail(connection: Connection, ident: str) -> dict[str, Any] | None:
    """What `timbel executions show` prints and `GET /executions/{id}` returns: the
    execution (full id or an unambiguous prefix) with its stages and their offsets, and the
    duration percentiles of its pipeline (`pipeline_percentiles`, None before any finished
    run). None when there is no such execution.

    Raises:
        LookupError: the prefix is too short or matches more than one execution.
    """
    execution = get_execution(connection, ident)
    if execution is None:
        return None
    add_stage_offsets(execution)
    [typical] = duration_percentiles(connection, [execution["pipeline"]]) or [None]
    execution["pipeline_percentiles"] = typical
    return execution
