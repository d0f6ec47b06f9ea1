"""Pipeline executions, as the list returns them."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


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
                    "items": [
                        {
                            "id": "5f0c2a9e-3b1d-4c55-9a41-0d5e8f7b6c21",
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
                    ],
                    "next_cursor": "eyJzIjogIjIwMjYtMTItMDRUMDk6MTI6MDMrMDA6MDAiLCAiaSI6ICIuLi4ifQ",
                }
            ]
        }
    }
