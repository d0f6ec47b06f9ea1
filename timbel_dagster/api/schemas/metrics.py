"""DORA metrics."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class DoraFigures(BaseModel):
    service: str = Field(description="`*` for the organisation.")
    environment: str
    deployments: int = Field(description="Successful deployments of new code.")
    deployments_per_day: float
    lead_time_hours_median: float | None
    change_failure_rate: float | None = Field(description="0 to 1.")
    time_to_restore_hours_median: float | None
    rework_rate: float | None = Field(description="Hotfixes and rollbacks over all, 0 to 1.")


class DoraWeek(DoraFigures):
    week_start: dt.date = Field(description="The Monday (UTC) the week starts on.")


_FIGURES = {
    "service": "checkout",
    "environment": "prod",
    "deployments": 9,
    "deployments_per_day": 0.321,
    "lead_time_hours_median": 20.5,
    "change_failure_rate": 0.1,
    "time_to_restore_hours_median": 1.5,
    "rework_rate": 0.1818,
}


class DoraReport(BaseModel):
    """`timbel dora --json`: the period [since, until) as one, and week by week. The period
    ends with the newest deployment, so a history that ended in the past still reports;
    `since`/`until` are null and `summary` too when there are no deployments at all."""

    service: str
    environment: str = "prod"
    weeks: int
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    summary: DoraFigures | None
    weekly: list[DoraWeek]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "service": "checkout",
                    "environment": "prod",
                    "weeks": 4,
                    "since": "2026-11-06T10:00:01Z",
                    "until": "2026-12-04T10:00:01Z",
                    "summary": _FIGURES,
                    "weekly": [_FIGURES | {"week_start": "2026-11-30", "deployments": 3}],
                }
            ]
        }
    }
