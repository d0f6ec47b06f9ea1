"""GitLab REST API (v4) JSON to domain records.

A pipeline's timing comes from its jobs (the list endpoint carries no start, finish or user),
so one keyset-paginated read of the project's jobs replaces a request per pipeline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from typing import Any

from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord, StageRecord
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


def _status(fields: Fields, table: dict[str, str]) -> tuple[str, str | None]:
    """The mapped status and, when GitLab sent one outside its documented list (or none),
    `unknown` with the raw value as a note."""
    raw = fields.get("status", str, default=None)
    if raw in table:
        return table[raw], None
    return "unknown", f"unknown status {raw!r}" if raw is not None else "no status"


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


def parse_job(project: str, data: Any) -> tuple[int, Fields]:
    """A job of the project's job list: its pipeline's id and its fields, every field a
    pipeline reads from it checked (raises `SourceDataError` naming the job and field)."""
    fields = Fields(SYSTEM, f"{project} job {_id_of(data)}", data)
    pipeline = fields.child("pipeline")
    _job_stage(fields)
    # parse_pipeline times the pipeline by its jobs' ends: a bad one is this job's reject,
    # not its pipeline's.
    fields.iso("finished_at", default=None)
    if fields.data.get("user"):
        fields.child("user").get("username", str)
    _job_artifacts(fields)
    return pipeline.get("id", int), fields


def _id_of(data: Any) -> Any:
    return data.get("id", "?") if isinstance(data, dict) else "?"


def _job_stage(job: Fields) -> StageRecord:
    """A job as a stage row; `position` and `attempt` are set by `_stages`."""
    status, note = _status(job, JOB_STATUSES)
    reason = job.get("failure_reason", str, default=None)
    return StageRecord(
        external_id=str(job.get("id", int)),
        name=job.get("name", str),
        parent_name=job.get("stage", str),
        position=0,
        status=status,
        started_at=job.iso("started_at", default=None),
        duration=job.get("duration", (int, float), default=None),
        queue_seconds=job.get("queued_duration", (int, float), default=None),
        error_message="; ".join(n for n in (note, reason) if n) or None,
    )


def _job_artifacts(job: Fields) -> list[dict[str, Any]]:
    """A job's artifacts metadata (`artifacts`, `artifacts_expire_at`) with download links."""
    expire = job.iso("artifacts_expire_at", default=None)
    web_url = job.get("web_url", str, default=None)
    files = []
    for artifact in job.children("artifacts", skip_nulls=True):
        file_type = artifact.get("file_type", str)
        files.append(
            {
                "job": job.get("name", str),
                "job_id": job.get("id", int),
                "file_type": file_type,
                "filename": artifact.get("filename", str, default=None),
                "size": artifact.get("size", int, default=None),
                "file_format": artifact.get("file_format", str, default=None),
                "expire_at": expire.isoformat() if expire else None,
                "url": f"{web_url}/artifacts/download?file_type={file_type}" if web_url else None,
            }
        )
    return files


def _stages(jobs: list[Fields]) -> tuple[StageRecord, ...]:
    """Jobs as stage rows: the GitLab stage is the parallel block; retries count attempts."""
    ordered = sorted(jobs, key=lambda j: j.get("id", int))
    stage_order: dict[str, int] = {}
    attempts: dict[str, int] = defaultdict(int)
    records = []
    for job in ordered:
        record = _job_stage(job)
        stage = record.parent_name or ""
        stage_order.setdefault(stage, len(stage_order))
        attempts[record.name] += 1
        records.append(
            dataclasses.replace(record, position=stage_order[stage], attempt=attempts[record.name])
        )
    return tuple(records)


def parse_pipeline(project: str, data: Any, jobs: list[Fields]) -> ExecutionRecord:
    """One pipeline from the list endpoint, timed and staged by its jobs.

    A status outside GitLab's list is `unknown` (the raw value in `error_message`); such a
    pipeline counts as finished once every one of its jobs has finished.
    """
    fields = Fields(SYSTEM, f"{project} pipeline {_id_of(data)}", data)
    pipeline_id = fields.get("id", int)
    status, note = _status(fields, PIPELINE_STATUSES)
    starts = [t for j in jobs if (t := j.iso("started_at", default=None))]
    ends = [t for j in jobs if (t := j.iso("finished_at", default=None))]
    started = min(starts) if starts else None
    finished = status in FINISHED or (status == "unknown" and bool(jobs) and len(ends) == len(jobs))
    completed = max(ends) if ends and finished else None
    users = [j.child("user").get("username", str) for j in jobs if j.data.get("user")]
    queued = [
        q for j in jobs if (q := j.get("queued_duration", (int, float), default=None)) is not None
    ]
    failed = [j.get("name", str) for j in jobs if j.data.get("status") == "failed"]
    artifacts = [a for j in sorted(jobs, key=lambda j: j.get("id", int)) for a in _job_artifacts(j)]
    if status == "failed" and failed:
        error = f"job(s) failed: {', '.join(sorted(set(failed)))}"
    else:
        error = note
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
        error_message=error,
        artifacts={"files": artifacts} if artifacts else None,
        stages=_stages(jobs),
    )


def listed_pipeline(data: Any, project: str) -> tuple[int, dt.datetime]:
    """An entry of the pipelines list: its id and creation time (raises `SourceDataError`)."""
    fields = Fields(SYSTEM, f"{project} pipeline {_id_of(data)}", data)
    return fields.get("id", int), fields.iso("created_at")
