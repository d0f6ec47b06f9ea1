"""Alerts, their events, alert rules and silences."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, Field

_ALERT = {
    "fingerprint": "3f2a9c0d1b7e4f5a8c6d2e1f0a9b8c7d",
    "rule": "namespace-cpu-near-quota",
    "severity": "critical",
    "labels": {"cluster": "seoul-dev-01", "namespace": "payments"},
    "state": "firing",
    "value": 0.94,
    "active_since": "2026-12-04T09:00:00Z",
    "firing_since": "2026-12-04T09:10:00Z",
    "resolved_at": None,
}
_EVENT = {
    "id": 412,
    "fingerprint": "3f2a9c0d1b7e4f5a8c6d2e1f0a9b8c7d",
    "rule": "namespace-cpu-near-quota",
    "severity": "critical",
    "kind": "fired",
    "at": "2026-12-04T09:10:00Z",
    "value": 0.94,
    "labels": {"cluster": "seoul-dev-01", "namespace": "payments"},
    "summary": "payments in seoul-dev-01 peaked at 94 % of its CPU quota",
    "silenced": False,
    "notified": True,
}
_RULE = {
    "name": "pipeline-failure-rate",
    "severity": "high",
    "kind": "warehouse",
    "for": "0:10:00",
    "renotify": "4:00:00",
    "origin": "warehouse:pipeline-failure-rate",
    "query": "pipeline_failure_rate > 0.2",
    "source": "warehouse",
}
_SILENCE = {
    "id": "9b1f4c2e-7a3d-4e8f-b6c5-1d2e3f4a5b6c",
    "matchers": {"alertname": "namespace-cpu-near-quota"},
    "starts_at": "2026-12-04T09:15:00Z",
    "ends_at": "2026-12-04T11:15:00Z",
    "created_by": "ops",
    "comment": "quota raise under way",
}


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

    model_config = {"json_schema_extra": {"examples": [{"items": [_ALERT]}]}}


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

    model_config = {"json_schema_extra": {"examples": [{"items": [_EVENT], "next_cursor": "412"}]}}


class RuleOut(BaseModel):
    """A rule the alert sensor evaluates, from the rules file, the warehouse or built in."""

    name: str
    severity: str
    kind: str = Field(description="warehouse (a fact) or prometheus (a PromQL query)")
    for_: str = Field(alias="for", description="How long the condition holds before firing.")
    renotify: str
    origin: str = Field(description="file:line, warehouse:NAME, or built-in:line")
    query: str
    source: str = Field(
        description="file, warehouse or built-in: only warehouse rules can be changed (a "
        "warehouse rule of a built-in rule's name replaces it)"
    )

    model_config = {"populate_by_name": True, "json_schema_extra": {"examples": [_RULE]}}


class RuleList(BaseModel):
    items: list[RuleOut]
    errors: list[str] = Field(description="Rules that did not load, each with its reason.")

    model_config = {"json_schema_extra": {"examples": [{"items": [_RULE], "errors": []}]}}


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

    model_config = {"json_schema_extra": {"examples": [_SILENCE]}}


class SilenceList(BaseModel):
    items: list[SilenceOut]

    model_config = {"json_schema_extra": {"examples": [{"items": [_SILENCE]}]}}
