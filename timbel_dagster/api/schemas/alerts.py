"""Alerts, their events, alert rules and silences."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, Field


class AlertOut(BaseModel):
    """The current state of one alert: a rule and one label set."""

    fingerprint: str
    rule: str
    severity: str
    labels: dict[str, Any]
    state: str = Field(description="pending, firing or resolved")
    value: float | None
    active_since: dt.datetime
    firing_since: dt.datetime | None
    resolved_at: dt.datetime | None


class AlertList(BaseModel):
    items: list[AlertOut]


class AlertEventOut(BaseModel):
    """An alert fired, was re-notified, or resolved."""

    id: int
    fingerprint: str
    rule: str
    severity: str
    kind: str = Field(description="fired, renotified or resolved")
    at: dt.datetime
    value: float | None
    labels: dict[str, Any]
    summary: str | None
    silenced: bool
    notified: bool


class AlertEventPage(BaseModel):
    """Alert events, newest first."""

    items: list[AlertEventOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class RuleOut(BaseModel):
    """A rule the alert sensor evaluates, from the rules file or the warehouse."""

    name: str
    severity: str
    kind: str = Field(description="warehouse (a fact) or prometheus (a PromQL query)")
    for_: str = Field(alias="for", description="How long the condition holds before firing.")
    renotify: str
    origin: str = Field(description="file:line, or warehouse:NAME")
    query: str
    source: str = Field(description="file or warehouse: only warehouse rules can be changed")

    model_config = {"populate_by_name": True}


class RuleList(BaseModel):
    items: list[RuleOut]
    errors: list[str] = Field(description="Rules that did not load, each with its reason.")


class RuleIn(BaseModel):
    """One rule, written as in a rules file (`deploy/alert-rules.example.yaml`): `name`,
    `severity`, a `fact` with `params` and `threshold` or a PromQL `expr`, and optionally
    `for`, `renotify`, `keep_firing_for`, `labels`, `summary`, `enabled`."""

    model_config = {
        "extra": "allow",
        "json_schema_extra": {
            "examples": [
                {
                    "name": "pipeline-failure-rate",
                    "severity": "high",
                    "fact": "pipeline_failure_rate",
                    "params": {"window": "1h", "min_executions": 5},
                    "threshold": "> 0.2",
                    "summary": "{{ labels.pipeline }} fails often",
                }
            ]
        },
    }

    name: str = Field(min_length=1, max_length=128)
    severity: str


class SilenceIn(BaseModel):
    """Mute notices of alerts whose labels match every matcher, for a while."""

    matchers: dict[str, str] = Field(
        min_length=1, description="label -> exact value; `alertname` matches the rule."
    )
    duration: str = Field(default="2h", description="30m, 2h, 1d ... (at most 90d).")
    comment: str = Field(min_length=1, description="Why (kept with the silence and audited).")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "matchers": {"alertname": "namespace-cpu-near-quota"},
                    "duration": "2h",
                    "comment": "quota raise under way",
                }
            ]
        }
    }


class SilenceOut(BaseModel):
    id: uuid.UUID
    matchers: dict[str, Any]
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: str = Field(description="The real actor who made it.")
    comment: str


class SilenceList(BaseModel):
    items: list[SilenceOut]
