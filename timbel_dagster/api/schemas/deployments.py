"""Deployment requests, their approval steps and their risk assessment."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from timbel_dagster.deploy.deciders import REASON_MAX_CHARS

# Blank text is not a reason: at least one character that is not white space.
_TEXT = r"\S"


class DeploymentRequestIn(BaseModel):
    service: str = Field(min_length=1, max_length=128, pattern=_TEXT, examples=["shop-api"])
    image: str = Field(
        min_length=1, max_length=512, examples=["registry.example.com/shop/api:1.4.2"]
    )
    group: str = Field(
        min_length=1, max_length=16, description="dev, staging or prod.", examples=["prod"]
    )
    reason: str = Field(default="", max_length=2000, examples=["checkout fix for #812"])


class ApproveIn(BaseModel):
    reason: str | None = Field(
        default=None, max_length=REASON_MAX_CHARS, description="Why; recorded with the step."
    )


class RejectIn(BaseModel):
    reason: str = Field(
        min_length=1, max_length=REASON_MAX_CHARS, pattern=_TEXT, examples=["no rollback plan"]
    )


class FastTrackIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=_TEXT)
    incident: str = Field(
        min_length=1, max_length=256, pattern=_TEXT, description="The incident it answers."
    )


class ReviewIn(BaseModel):
    note: str = Field(min_length=1, max_length=4000, pattern=_TEXT)


class ApprovalStepOut(BaseModel):
    position: int
    role: str = Field(description="The role that decides this step.")
    decision: str = Field(description="pending, approved, rejected or skipped (fast-track).")
    decided_by: str | None
    reason: str | None
    decided_at: dt.datetime | None


class DeploymentRequestOut(BaseModel):
    """A deployment request with its approval chain."""

    id: str
    number: int
    service: str
    image: str
    environment_group: str
    reason: str
    requested_by: str
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None
    fast_track: bool
    incident_ref: str | None
    post_review_by: str | None
    post_review_at: dt.datetime | None
    steps: list[ApprovalStepOut]
    risk_note: str | None = Field(
        default=None, description="Why a new pending request has no risk assessment."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "0b7f3c1e-52a4-4f0e-9a7e-3c2b1d0e9f88",
                    "number": 42,
                    "service": "shop-api",
                    "image": "registry.example.com/shop/api:1.4.2",
                    "environment_group": "prod",
                    "reason": "checkout fix for #812",
                    "requested_by": "dana",
                    "status": "pending",
                    "created_at": "2026-12-04T09:00:00Z",
                    "expires_at": "2026-12-07T09:00:00Z",
                    "decided_at": None,
                    "fast_track": False,
                    "incident_ref": None,
                    "post_review_by": None,
                    "post_review_at": None,
                    "steps": [
                        {"position": 1, "role": "team_lead", "decision": "approved",
                         "decided_by": "lee", "reason": "tested", "decided_at":
                         "2026-12-04T10:00:00Z"},
                        {"position": 2, "role": "operations", "decision": "pending",
                         "decided_by": None, "reason": None, "decided_at": None},
                    ],
                }
            ]
        }
    }  # fmt: skip


class DeploymentRequestPage(BaseModel):
    """One page of requests, newest (highest number) first."""

    items: list[DeploymentRequestOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": DeploymentRequestOut.model_config["json_schema_extra"]["examples"],
                    "next_cursor": "eyJuIjogNDF9",
                }
            ]
        }
    }


class RiskReason(BaseModel):
    feature: str
    value: Any
    contribution: float = Field(description="Log-odds this value adds against a median change.")
    text: str = Field(description="The reason in words.")


class RiskAssessment(BaseModel):
    """The risk advisor's assessment of a request, as its approvers see it."""

    request: int
    probability: float = Field(description="Chance of failure, 0 to 1.")
    recommendation: str = Field(description="approve, review or reject.")
    advice: str = Field(description="The probability and recommendation in words.")
    model_version: int
    confidence: float
    confidence_text: str = Field(description="How far to trust it, in words.")
    confidence_basis: str = Field(description="Where the confidence comes from.")
    reasons: list[RiskReason]
    similar: list[dict[str, Any]] = Field(
        description="The past deployments most like this one, with their outcomes."
    )
    ships: dict[str, Any] = Field(description="Commits and lines the image ships.")
    scored_at: str | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "request": 42,
                    "probability": 0.031,
                    "recommendation": "approve",
                    "advice": "3.1% chance of failure: APPROVE (model v2)",
                    "model_version": 2,
                    "confidence": 0.72,
                    "confidence_text": "confidence high (0.72): the past deployments most like "
                    "this one went as predicted",
                    "confidence_basis": "confidence comes from the 5 past deployments most "
                    "like this one: how close they are, and whether their outcomes agree with "
                    "this prediction",
                    "reasons": [
                        {"feature": "la", "value": 412.0, "contribution": 0.84,
                         "text": "adds 412 lines: raises risk strongly (failure odds x2.3)"},
                    ],
                    "similar": [
                        {"service": "shop-api", "environment": "prod",
                         "started_at": "2026-10-30T10:00:00+00:00", "outcome": "succeeded"},
                    ],
                    "ships": {"commits": 3, "lines_added": 412.0, "lines_deleted": 20.0},
                    "scored_at": "2026-12-04T09:00:01+00:00",
                }
            ]
        }
    }  # fmt: skip
