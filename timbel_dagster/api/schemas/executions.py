"""Pipeline executions: the list, one execution with its stages, its log, log search."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

_ID = "5f0c2a9e-3b1d-4c55-9a41-0d5e8f7b6c21"


class ExecutionSummary(BaseModel):
    id: str
    pipeline: str
    source: str = Field(description="jenkins, gitlab, ...")
    external_id: str = Field(description="The source's build number or pipeline id.")
    status: str
    triggered_by: str | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    duration: float | None = Field(description="Seconds.")
    branch: str | None
    commit_sha: str | None
    error_message: str | None


_SUMMARY_EXAMPLE = {
    "id": _ID,
    "pipeline": "shop/checkout",
    "source": "gitlab",
    "external_id": "48213",
    "status": "failed",
    "triggered_by": "dana",
    "started_at": "2026-12-04T09:12:03Z",
    "completed_at": "2026-12-04T09:19:47Z",
    "duration": 464.0,
    "branch": "main",
    "commit_sha": "9c1e4f0",
    "error_message": "unit tests failed",
}


class ExecutionPage(BaseModel):
    """One page of executions, newest first."""

    items: list[ExecutionSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [_SUMMARY_EXAMPLE],
                    "next_cursor": "WyIyMDI2LTEyLTA0VDA5OjEyOjAzKzAwOjAwIiwgIi4uLiJd",
                }
            ]
        }
    }


class Stage(BaseModel):
    name: str
    parent_name: str | None = Field(description="The parallel block, if any.")
    position: int
    status: str
    started_at: dt.datetime | None
    duration: float | None = Field(description="Seconds.")
    queue_seconds: float | None
    attempt: int
    error_message: str | None
    offset_seconds: float | None = Field(
        default=None, description="When it started, from the start of the execution."
    )


_STAGE_EXAMPLE = {
    "name": "test",
    "parent_name": None,
    "position": 2,
    "status": "failed",
    "started_at": "2026-12-04T09:14:10Z",
    "duration": 301.5,
    "queue_seconds": 4.0,
    "attempt": 1,
    "error_message": "3 tests failed",
    "offset_seconds": 127.0,
}


class StageList(BaseModel):
    """An execution's stages in their order (position, then attempt)."""

    items: list[Stage]

    model_config = {"json_schema_extra": {"examples": [{"items": [_STAGE_EXAMPLE]}]}}


class Percentiles(BaseModel):
    """Finished executions of a pipeline: count, success rate, duration percentiles."""

    pipeline: str
    executions: int
    success_rate: float = Field(description="0 to 1.")
    p50_seconds: float | None
    p90_seconds: float | None
    p99_seconds: float | None


_PERCENTILES_EXAMPLE = {
    "pipeline": "shop/checkout",
    "executions": 412,
    "success_rate": 0.9126,
    "p50_seconds": 402.0,
    "p90_seconds": 611.5,
    "p99_seconds": 980.2,
}


class ExecutionDetail(ExecutionSummary):
    """One execution as `timbel executions show --json` prints it."""

    url: str | None
    queue_seconds: float | None
    artifacts: dict[str, Any] | None
    logs: str | None = Field(description="The stored tail of the log (the whole: `/log`).")
    service: str | None
    tenant: str | None = Field(description="The tenant of the pipeline's service.")
    stages: list[Stage]
    pipeline_percentiles: Percentiles | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                _SUMMARY_EXAMPLE
                | {
                    "url": "https://gitlab.example.com/shop/checkout/-/pipelines/48213",
                    "queue_seconds": 12.0,
                    "artifacts": None,
                    "logs": "... 3 failed, 211 passed\n",
                    "service": "checkout",
                    "tenant": "acme",
                    "stages": [_STAGE_EXAMPLE],
                    "pipeline_percentiles": _PERCENTILES_EXAMPLE,
                }
            ]
        }
    }


class LogChunk(BaseModel):
    stream: str = Field(description="'' for a Jenkins console, the job id for GitLab.")
    start_offset: int = Field(description="Byte offset in the source log where it starts.")
    first_line: int = Field(description="1-based number of its first line.")
    content: str


class LogPage(BaseModel):
    """Stored chunks of an execution's log, stream by stream, in order."""

    items: list[LogChunk]
    next_cursor: str | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "stream": "",
                            "start_offset": 0,
                            "first_line": 1,
                            "content": "Started by user dana\n",
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    }


class LogMatch(BaseModel):
    execution_id: str
    pipeline: str
    external_id: str
    stream: str
    line_number: int
    line: str


class LogSearchPage(BaseModel):
    """Matching log lines, newest executions first."""

    items: list[LogMatch]
    next_cursor: str | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "execution_id": _ID,
                            "pipeline": "shop/checkout",
                            "external_id": "48213",
                            "stream": "",
                            "line_number": 812,
                            "line": "ERROR: connection refused",
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    }
