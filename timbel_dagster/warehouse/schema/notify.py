"""Warehouse tables of alerting and notifications: rules, alert state, alert events,
silences, subscriptions and the record of every notification sent."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, Float, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, Timestamps, _in, _now

SEVERITIES = ("critical", "high", "warning", "info")  # most to least severe
CHANNELS = ("slack", "email")
NOTIFICATION_STATUSES = ("pending", "retrying", "sent", "failed", "skipped")
ALERT_STATES = ("pending", "firing", "resolved")
ALERT_EVENT_KINDS = ("fired", "renotified", "resolved")


class AlertRule(Timestamps, Base):
    """A rule kept in the warehouse (rules from the YAML file are not stored here)."""

    __tablename__ = "alert_rules"
    __table_args__ = (CheckConstraint(_in("severity", SEVERITIES), name="severity"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    definition: Mapped[dict[str, Any]]  # the same mapping a YAML rule is written as
    severity: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(128))


class Alert(Base):
    """The current state of one alert: a rule and one label set (its fingerprint)."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("state", ALERT_STATES), name="state"),
        Index(None, "rule", "state"),
    )

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    active_since: Mapped[dt.datetime]  # when the condition started to hold (pending)
    firing_since: Mapped[dt.datetime | None]
    last_notified_at: Mapped[dt.datetime | None]
    clear_since: Mapped[dt.datetime | None]  # firing, but the condition stopped holding
    resolved_at: Mapped[dt.datetime | None]
    # A resolution notice held back by the re-notify interval; it goes out when the interval
    # has passed unless the alert fires again first (a flapping alert stays quiet).
    notice_pending: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now)


class AlertEvent(Base):
    """An alert fired, was re-notified after its debounce interval, or resolved."""

    __tablename__ = "alert_events"
    __table_args__ = (
        CheckConstraint(_in("kind", ALERT_EVENT_KINDS), name="kind"),
        Index(None, "at"),
        Index(None, "rule", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    rule: Mapped[str] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime]
    value: Mapped[float | None] = mapped_column(Float)
    labels: Mapped[dict[str, Any]]
    summary: Mapped[str | None] = mapped_column(Text)
    silenced: Mapped[bool] = mapped_column(default=False)
    notified: Mapped[bool] = mapped_column(default=False)  # false: silenced or debounced


class Silence(Base):
    """Mutes alerts whose labels match every matcher (`alertname` matches the rule)."""

    __tablename__ = "alert_silences"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    matchers: Mapped[dict[str, Any]]  # label -> exact value
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class Subscription(Timestamps, Base):
    """A user wants `event` notifications (alerts of `rule` at `min_severity` or worse) on
    `channel`. `active` false is an unsubscribe, kept so that defaults do not re-subscribe."""

    __tablename__ = "notification_subscriptions"
    __table_args__ = (
        UniqueConstraint("user_name", "channel", "event", "rule"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("min_severity", SEVERITIES), name="min_severity"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(64))  # alert | pipeline | deployment | issue | *
    rule: Mapped[str] = mapped_column(String(128), default="*")  # alert rule name or *
    min_severity: Mapped[str] = mapped_column(String(16), default="info")
    active: Mapped[bool] = mapped_column(default=True)


class Notification(Base):
    """Every message sent, or tried: one row per event, channel and recipient."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("status", NOTIFICATION_STATUSES), name="status"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # The event, channel and recipient: sending the same event twice is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(512), unique=True)
    event: Mapped[str] = mapped_column(String(64))  # e.g. alert_fired, pipeline_failed
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))  # webhook name or e-mail address
    subject: Mapped[str] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]]  # what was rendered: Slack blocks or the e-mail parts
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    sent_at: Mapped[dt.datetime | None]
