"""Warehouse tables of who may act and how (issue 15): API tokens, teams and their members,
tenant members, which team owns a service, and the rows the API and webhooks hand over to
Dagster (webhook deliveries, run grants).

The people themselves stay in `users` (`models.User`, with `kind` and `oidc_subject`).
Memberships name users and teams by name, as the rest of the warehouse does (a request's
`requested_by`, an approval's `decided_by`), so the audit log and these rows read alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, _in, _now

WEBHOOK_SOURCES = ("gitlab", "jenkins", "registry", "slack")
DELIVERY_STATUSES = ("pending", "taken", "ignored")
TOKEN_PREFIX_LENGTH = 12  # `tbl_` and 8 characters of the secret: enough to tell tokens apart


class ApiToken(Base):
    """A bearer token of one user. Only the SHA-256 of the secret is kept: the secret is
    shown once, when it is created. `prefix` (the secret's first characters) names the token
    in lists and in `timbel token revoke`."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "user_name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    last_used_at: Mapped[dt.datetime | None]
    last_used_ip: Mapped[str | None] = mapped_column(String(64))


class Team(Base):
    """A team: it owns services, and its team leads approve their requests."""

    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class TeamMember(Base):
    """A user's membership of a team (a user may be in several)."""

    __tablename__ = "team_members"
    __table_args__ = (Index(None, "user_name"),)

    team: Mapped[str] = mapped_column(
        ForeignKey("teams.name", ondelete="CASCADE"), primary_key=True
    )
    user_name: Mapped[str] = mapped_column(
        ForeignKey("users.name", ondelete="CASCADE"), primary_key=True
    )


class TenantMember(Base):
    """A user's membership of a tenant: they see that tenant's data."""

    __tablename__ = "tenant_members"
    __table_args__ = (Index(None, "user_name"),)

    tenant: Mapped[str] = mapped_column(
        ForeignKey("tenants.name", ondelete="CASCADE"), primary_key=True
    )
    user_name: Mapped[str] = mapped_column(
        ForeignKey("users.name", ondelete="CASCADE"), primary_key=True
    )


class ServiceOwner(Base):
    """Which team owns a service (and the tenant it runs in, when known): the team check
    of approvals reads it."""

    __tablename__ = "service_owners"

    service: Mapped[str] = mapped_column(String(128), primary_key=True)
    team: Mapped[str] = mapped_column(ForeignKey("teams.name", ondelete="CASCADE"))
    tenant: Mapped[str | None] = mapped_column(String(63))


class WebhookDelivery(Base):
    """One inbound webhook call, recorded before anything acts on it; the unique key makes
    a redelivery a no-op."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("source", WEBHOOK_SOURCES), name="source"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        UniqueConstraint("source", "delivery_key"),
        Index(None, "source", "status", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    delivery_key: Mapped[str] = mapped_column(String(256))
    event: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(512))  # project / job / repo:tag
    received_at: Mapped[dt.datetime] = mapped_column(default=_now)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    taken_at: Mapped[dt.datetime | None]
    run_key: Mapped[str | None] = mapped_column(String(256))


class RunGrant(Base):
    """Leave for one run of a guarded job (deploy, rollback, provision_tenant) with one
    config: written by the API for an approved action, claimed once by the run."""

    __tablename__ = "run_grants"
    __table_args__ = (Index(None, "used_at", "job"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    config_sha256: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    request_number: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    run_id: Mapped[str | None] = mapped_column(String(64))
