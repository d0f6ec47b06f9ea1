"""GitLab REST API (v4) JSON to domain records.

A pipeline's timing comes from its jobs (the list endpoint carries no start, finish or user),
so one keyset-paginated read of the project's jobs replaces a request per pipeline.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from timbel_dagster.resources.delivery import ExecutionRecord, PipelineRecord, StageRecord
from timbel_dagster.resources.errors import SourceDataError
from timbel_dagster.resources.gitlab.client import SYSTEM
from timbel_dagster.resources.payload import Fields

PIPELINE_STATUSES = {
    "created": "pending",
    "waiting_for_resource": "pending",
    "preparing": "pending",
    "pending": "pending",
    "scheduled": "pending",
    "manual": "pending",
    "running": "running",
    "waiting_for_callback": "running",
    "canceling": "running",
    "success": "success",
    "failed": "failed",
    "canceled": "aborted",
    "skipped": "aborted",
}
JOB_STATUSES = {**PIPELINE_STATUSES, "skipped": "skipped", "manual": "skipped"}
FINISHED = ("success", "failed", "aborted")


def _status(fields: Fields, table: dict[str, str]) -> str:
    raw = fields.get("status", str)
    if raw not in table:
        raise SourceDataError(SYSTEM, fields.obj, f"unknown value {raw!r}", field="status")
    return table[raw]


def parse_project(data: dict[str, Any]) -> PipelineRecord:
    fields = Fields(SYSTEM, f"project {data.get('id', '?')}", data)
    path = fields.get("path_with_namespace", str)
    return PipelineRecord(
        ci_system="gitlab",
        name=path,
        service=fields.get("path", str),
        repository=fields.get("http_url_to_repo", str, default=None),
        default_branch=fields.get("default_branch", str, default=None),
        url=fields.get("web_url", str, default=None),
    )


def parse_job(project: str, data: dict[str, Any]) -> tuple[int, Fields]:
    fields = Fields(SYSTEM, f"{project} job {data.get('id', '?')}", data)
    pipeline = fields.child("pipeline")
    return pipeline.get("id", int), fields


def _stages(jobs: list[Fields]) -> tuple[StageRecord, ...]:
    """Jobs as stage rows: the GitLab stage is the parallel block; retries count attempts."""
    ordered = sorted(jobs, key=lambda j: j.get("id", int))
    stage_order: dict[str, int] = {}
    attempts: dict[str, int] = defaultdict(int)
    records = []
    for job in ordered:
        stage = job.get("stage", str)
        stage_order.setdefault(stage, len(stage_order))
        name = job.get("name", str)
        attempts[name] += 1
        records.append(
            StageRecord(
                external_id=str(job.get("id", int)),
                name=name,
                parent_name=stage,
                position=stage_order[stage],
                status=_status(job, JOB_STATUSES),
                started_at=job.iso("started_at", default=None),
                duration=job.get("duration", (int, float), default=None),
                queue_seconds=job.get("queued_duration", (int, float), default=None),
                attempt=attempts[name],
            )
        )
    return tuple(records)


def parse_pipeline(project: str, data: dict[str, Any], jobs: list[Fields]) -> ExecutionRecord:
    """One pipeline from the list endpoint, timed and staged by its jobs."""
    fields = Fields(SYSTEM, f"{project} pipeline {data.get('id', '?')}", data)
    pipeline_id = fields.get("id", int)
    status = _status(fields, PIPELINE_STATUSES)
    starts = [t for j in jobs if (t := j.iso("started_at", default=None))]
    ends = [t for j in jobs if (t := j.iso("finished_at", default=None))]
    started = min(starts) if starts else None
    completed = max(ends) if ends and status in FINISHED else None
    users = [j.child("user").get("username", str) for j in jobs if j.data.get("user")]
    queued = [
        q for j in jobs if (q := j.get("queued_duration", (int, float), default=None)) is not None
    ]
    failed = [j.get("name", str) for j in jobs if j.data.get("status") == "failed"]
    return ExecutionRecord(
        pipeline=project,
        external_id=str(pipeline_id),
        sequence=pipeline_id,
        status=status,
        triggered_by=users[0] if users else fields.get("source", str, default=None),
        started_at=started or fields.iso("created_at"),
        completed_at=completed,
        duration=(completed - started).total_seconds() if completed and started else None,
        commit_sha=fields.get("sha", str, default=None),
        branch=fields.get("ref", str, default=None),
        url=fields.get("web_url", str, default=None),
        queue_seconds=min(queued) if queued else None,
        error_message=f"job(s) failed: {', '.join(sorted(set(failed)))}"
        if status == "failed" and failed
        else None,
        stages=_stages(jobs),
    )


def created_at(data: dict[str, Any], project: str) -> dt.datetime:
    return Fields(SYSTEM, f"{project} pipeline {data.get('id', '?')}", data).iso("created_at")
