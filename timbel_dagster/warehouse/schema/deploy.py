"""Warehouse tables of deployment requests and their approvals, tenants, and the audit
log's archive checkpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import ENVIRONMENT_GROUPS, Base, Timestamps, _in, _now
from timbel_dagster.warehouse.schema.types import JSONType

REQUEST_STATUSES = (
    "pending",  # waiting for approvals
    "approved",  # every step approved (or fast-tracked): ready to roll out
    "rejected",
    "expired",
    "deploying",
    "deployed",
    "failed",
    "rolled_back",
)
DECISIONS = ("pending", "approved", "rejected", "skipped")
TENANT_STATUSES = ("provisioned", "deleted")


class DeploymentRequest(Timestamps, Base):
    """A request to roll an image of a service out to an environment group."""

    __tablename__ = "deployment_requests"
    __table_args__ = (
        CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
        CheckConstraint(_in("environment_group", ENVIRONMENT_GROUPS), name="group"),
        Index(None, "status", "expires_at"),
        Index(None, "service", "created_at"),
        Index(None, "status", "number"),  # the API's request list, by status, keyset on number
        Index(None, "image", "service"),  # which services asked for an image: findings' scope
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)  # what people type: #42
    service: Mapped[str] = mapped_column(String(128))
    image: Mapped[str] = mapped_column(String(512))
    environment_group: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]
    fast_track: Mapped[bool] = mapped_column(default=False)
    incident_ref: Mapped[str | None] = mapped_column(String(256))
    # A fast-tracked request must be reviewed after the fact; these record who did it.
    post_review_by: Mapped[str | None] = mapped_column(String(128))
    post_review_at: Mapped[dt.datetime | None]
    post_review_note: Mapped[str | None] = mapped_column(Text)
    risk: Mapped[dict[str, Any] | None]  # the approval advisor's assessment, when there is one


class ApprovalStep(Base):
    """One step of a request's approval chain: a role, and who decided what."""

    __tablename__ = "approval_steps"
    __table_args__ = (CheckConstraint(_in("decision", DECISIONS), name="decision"),)

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployment_requests.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None]


class Tenant(Timestamps, Base):
    """A team's slice of the clusters: a namespace with quota, limits, policy and access."""

    __tablename__ = "tenants"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint(_in("status", TENANT_STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))  # a DNS label: it names the namespace
    cpu_cores: Mapped[float] = mapped_column(Float)
    memory_bytes: Mapped[float] = mapped_column(Float)
    # Its users are the rows of `tenant_members` (identity.TenantMember).
    clusters: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="provisioned")
    created_by: Mapped[str] = mapped_column(String(128))


class AuditCheckpoint(Base):
    """Where the archived part of the audit chain ended: verification of the rows still in
    the table starts from `last_hash` after event `last_id`."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    last_id: Mapped[int] = mapped_column(Integer, unique=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    events: Mapped[int] = mapped_column(Integer)
    archive: Mapped[str] = mapped_column(String(1024))  # the JSON Lines file they went to
    archive_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


TARGET_STATUSES = ("pending", "rolling", "succeeded", "failed", "rolled_back", "halted")
ROLLBACK_STATUSES = ("planned", "done", "failed", "dry_run")


class RolloutTarget(Base):
    """One cluster of a request's rollout: kept current while the deploy job runs."""

    __tablename__ = "rollout_targets"
    __table_args__ = (CheckConstraint(_in("status", TARGET_STATUSES), name="status"),)

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployment_requests.id", ondelete="CASCADE"), primary_key=True
    )
    cluster: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    previous_image: Mapped[str | None] = mapped_column(String(512))
    previous_revision: Mapped[str | None] = mapped_column(String(32))
    revision: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now)


class ServiceLease(Base):
    """The run that holds a service: a `deploy` from its plan to its settling, a `rollback`
    throughout (deploy.leases). One row per held service; gone when the run ends."""

    __tablename__ = "service_leases"

    service: Mapped[str] = mapped_column(String(128), primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime]
    # A run worker that died never releases it: past this, the next run takes it over.
    expires_at: Mapped[dt.datetime]


class Rollback(Base):
    """A rollback of one service in one cluster. `idempotency_key` (deployment and revision)
    is unique: two triggers racing for the same bad revision make one rollback."""

    __tablename__ = "rollbacks"
    __table_args__ = (CheckConstraint(_in("status", ROLLBACK_STATUSES), name="status"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(256), unique=True)
    service: Mapped[str] = mapped_column(String(128), index=True)
    cluster: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(128))
    from_image: Mapped[str] = mapped_column(String(512))
    from_revision: Mapped[str | None] = mapped_column(String(32))
    to_image: Mapped[str | None] = mapped_column(String(512))
    to_revision: Mapped[str | None] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(64))  # health sensor, rollout strategy, person
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(default=False)
    details: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    finished_at: Mapped[dt.datetime | None]


class ScalingRecord(Base):
    """An autoscaler's state or a scaling event of one workload at one moment."""

    __tablename__ = "scaling_history"
    __table_args__ = (
        UniqueConstraint("source", "cluster", "namespace", "workload", "at", "reason"),
        Index(None, "cluster", "workload", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(128))
    workload: Mapped[str] = mapped_column(String(256))
    at: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(String(64))  # status | SuccessfulRescale | ...
    current_replicas: Mapped[int | None] = mapped_column(Integer)
    desired_replicas: Mapped[int | None] = mapped_column(Integer)
    min_replicas: Mapped[int | None] = mapped_column(Integer)
    max_replicas: Mapped[int | None] = mapped_column(Integer)
    cpu_utilization: Mapped[int | None] = mapped_column(Integer)  # percent of requests
    message: Mapped[str | None] = mapped_column(Text)
