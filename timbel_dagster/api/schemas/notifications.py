"""Notification subscriptions and the record of what was sent."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from timbel_dagster.notify.messages import SUBSCRIBABLE_EVENTS
from timbel_dagster.warehouse.schema.notify import CHANNELS, SEVERITIES

Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Event = Literal[SUBSCRIBABLE_EVENTS]  # type: ignore[valid-type]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
_SUBSCRIPTION = {
    "id": "0e6f3c1a-5b2d-5c4e-9f8a-7b6c5d4e3f2a",
    "user": "dana",
    "channel": "email",
    "event": "alert",
    "rule": "*",
    "min_severity": "high",
    "active": True,
    "created_at": "2026-12-01T08:00:00Z",
    "updated_at": "2026-12-01T08:00:00Z",
}
_DELIVERY = {
    "created_at": "2026-12-04T09:10:02Z",
    "event": "alert_fired",
    "channel": "email",
    "recipient": "dana@example.com",
    "status": "sent",
    "attempts": 1,
    "last_error": None,
}


class SubscriptionIn(BaseModel):
    """Send `user`'s notices of `event` (alerts of `rule`) at `min_severity` or worse on
    `channel`."""

    user: str | None = Field(
        default=None, max_length=128, description="Whose (default: the caller; another's: admin)."
    )
    channel: Channel
    event: Event = Field(default="*", description="An event, a family (alert, ...) or *.")
    rule: str = Field(default="*", min_length=1, max_length=128, description="Alert rule or *.")
    min_severity: Severity = "info"

    model_config = {
        "json_schema_extra": {
            "examples": [{"channel": "email", "event": "alert", "min_severity": "high"}]
        }
    }


class SubscriptionOut(BaseModel):
    """A subscription; `active` false is an unsubscribe, kept so that it overrides broader
    subscriptions."""

    id: uuid.UUID
    user: str
    channel: str
    event: str
    rule: str
    min_severity: str
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class SubscriptionMade(SubscriptionOut):
    changed: bool = Field(description="False when the same subscription was already active.")

    model_config = {"json_schema_extra": {"examples": [_SUBSCRIPTION | {"changed": True}]}}


class SubscriptionList(BaseModel):
    items: list[SubscriptionOut]

    model_config = {"json_schema_extra": {"examples": [{"items": [_SUBSCRIPTION]}]}}


class DeliveryOut(BaseModel):
    """One notification sent (or tried) to the caller."""

    created_at: dt.datetime
    event: str
    channel: str
    recipient: str
    status: str = Field(description="pending, retrying, sent, failed or skipped")
    attempts: int
    last_error: str | None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]

    model_config = {"json_schema_extra": {"examples": [{"items": [_DELIVERY]}]}}
