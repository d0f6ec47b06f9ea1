"""The warehouse schema: SQLAlchemy 2 models shared by SQLite and PostgreSQL.

Every table that ingestion writes has a unique natural key (the upsert's conflict target) and
a `source` column: `sample` for the sample organisation, otherwise the system it came from.
Ids are UUIDs derived from the natural key (see `warehouse.schema.ids`), so a re-ingested row keeps
its id and child rows can be linked without reading their parents back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from timbel_dagster.records.delivery import ENVIRONMENT_GROUPS
from timbel_dagster.warehouse.schema.types import JSONType, UTCDateTime

# `unknown`: the source sent a status we have no mapping for (or none); the raw value is kept
# in the row's `error_message`.
EXECUTION_STATUSES = ("pending", "running", "success", "failed", "aborted", "unknown")
STAGE_STATUSES = (*EXECUTION_STATUSES, "skipped")
DEPLOYMENT_STATUSES = ("pending", "running", "success", "failed", "rolled_back")
DEPLOYMENT_KINDS = ("release", "hotfix", "rollback")
USER_ROLES = ("developer", "team_lead", "operations", "admin", "viewer")
USER_KINDS = ("person", "service")  # a service account acts only through its API tokens

# Deterministic constraint names so that Alembic migrations are the same on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def trigram_index(name: str, column: str) -> Index:
    """A GIN `pg_trgm` index of `column`, which serves `ILIKE '%text%'` for text of 3 or more
    letters or digits; on PostgreSQL only (`ddl_if`: SQLite gets none, and no B-tree of a
    whole log either). Migration 0021 creates it when the extension can be had."""
    return Index(
        name,
        column,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops"},
        info={"only_on": "postgresql"},  # read by `autogenerate_filter`
    ).ddl_if(dialect="postgresql")


def autogenerate_filter(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` for a database of `dialect`: a model index declared for
    another dialect only (`info["only_on"]`, as `trigram_index` does) is not compared, as
    `create_all` would not create it there either."""

    def include(item: Any, _name: Any, type_: str, _reflected: bool, _other: Any) -> bool:
        only = item.info.get("only_on") if type_ == "index" and item is not None else None
        return only is None or only == dialect

    return include


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now)


class User(Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", USER_ROLES), name="role"),
        CheckConstraint(_in("kind", USER_KINDS), name="kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(32))
    team: Mapped[str | None] = mapped_column(String(128))
    slack_id: Mapped[str | None] = mapped_column(String(64))
    # Set by `timbel users disable`: the person stays (the audit log names them) but may
    # no longer act. NULL while enabled.
    disabled_at: Mapped[dt.datetime | None]
    # `person`, or `service` for an account that acts only through its API tokens.
    kind: Mapped[str] = mapped_column(String(16), default="person", server_default="person")
    # `<issuer>|<sub>` of the OIDC identity that logs in as this user, when one is linked.
    oidc_subject: Mapped[str | None] = mapped_column(String(512), unique=True)


class Cluster(Timestamps, Base):
    __tablename__ = "clusters"
    __table_args__ = (CheckConstraint(_in("environment_group", ENVIRONMENT_GROUPS), name="group"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    environment_group: Mapped[str] = mapped_column(String(32))
    api_url: Mapped[str | None] = mapped_column(String(512))
    kubernetes_version: Mapped[str | None] = mapped_column(String(32))


class Pipeline(Timestamps, Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("source", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    ci_system: Mapped[str] = mapped_column(String(32))  # jenkins | gitlab
    name: Mapped[str] = mapped_column(String(512))  # Jenkins full name or GitLab project path
    service: Mapped[str | None] = mapped_column(String(128), index=True)
    repository: Mapped[str | None] = mapped_column(String(512))
    default_branch: Mapped[str | None] = mapped_column(String(256))
    url: Mapped[str | None] = mapped_column(String(1024))


class PipelineExecution(Timestamps, Base):
    __tablename__ = "pipeline_executions"
    __table_args__ = (
        UniqueConstraint("source", "pipeline_id", "external_id"),
        CheckConstraint(_in("status", EXECUTION_STATUSES), name="status"),
        Index(None, "pipeline_id", "started_at"),
        Index(None, "pipeline_id", "sequence"),
        Index(None, "started_at"),
        # Keyset pages of the API's execution list (newest first: a B-tree reads both ways).
        Index(None, "started_at", "id"),
        Index(None, "status", "started_at"),
        # Executions finished in a window, of some pipelines (SLO SLIs) or of all (the
        # `pipeline_failure_rate` fact): migration 0027.
        Index(None, "pipeline_id", "completed_at"),
        Index(None, "completed_at"),
        # `executions list --search` (migration 0021; PostgreSQL only, see `trigram_index`).
        trigram_index("ix_pipeline_executions_error_message_trgm", "error_message"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    pipeline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))  # build number / pipeline id
    # The source's numeric order of executions within a pipeline (Jenkins build number,
    # GitLab pipeline id): sensors find their high-water marks with it.
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    triggered_by: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    duration: Mapped[float | None] = mapped_column(Float)  # seconds
    queue_seconds: Mapped[float | None] = mapped_column(Float)
    logs: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[dict[str, Any] | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(1024))
    commit_sha: Mapped[str | None] = mapped_column(String(64), index=True)
    branch: Mapped[str | None] = mapped_column(String(256))


class StageExecution(Timestamps, Base):
    __tablename__ = "stage_executions"
    __table_args__ = (
        UniqueConstraint("execution_id", "external_id"),
        CheckConstraint(_in("status", STAGE_STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipeline_executions.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(128))  # wfapi node id / GitLab job id
    name: Mapped[str] = mapped_column(String(256))
    parent_name: Mapped[str | None] = mapped_column(String(256))  # the parallel block, if any
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime | None]
    duration: Mapped[float | None] = mapped_column(Float)
    queue_seconds: Mapped[float | None] = mapped_column(Float)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    error_message: Mapped[str | None] = mapped_column(Text)  # why it failed, or its raw status


class ExecutionLog(Base):
    """What is stored of one log stream of an execution: the Jenkins console (stream `''`)
    or one GitLab job's trace (stream = the job id)."""

    __tablename__ = "execution_logs"

    execution_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipeline_executions.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256))  # the job's name, for GitLab
    size: Mapped[int] = mapped_column(BigInteger)  # bytes stored: where following resumes
    lines: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool]
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now)


class ExecutionLogChunk(Base):
    """A run of whole lines of a log, from byte `start_offset` of its stream."""

    __tablename__ = "execution_log_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["execution_id", "stream"],
            ["execution_logs.execution_id", "execution_logs.stream"],
            ondelete="CASCADE",
        ),
        # Substring search of the logs (migration 0021). The full-text index of migration
        # 0003 (`to_tsvector('simple', content)`) is an expression the models do not hold.
        trigram_index("ix_execution_log_chunks_content_trgm", "content"),
    )

    execution_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    start_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_line: Mapped[int] = mapped_column(Integer)  # 1-based number of its first line
    length: Mapped[int] = mapped_column(Integer)  # bytes of the source this chunk covers
    content: Mapped[str] = mapped_column(Text)


class Commit(Timestamps, Base):
    """One commit with Kamei et al.'s change metrics (TSE 2013) and its files' history
    (`records.delivery.HISTORY_MEASURES`: NULL for rows stored before migration 0029 and for
    sources that do not know them)."""

    __tablename__ = "commits"
    __table_args__ = (UniqueConstraint("repository", "sha"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    repository: Mapped[str] = mapped_column(String(512))
    sha: Mapped[str] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(256))
    authored_at: Mapped[dt.datetime | None]
    committed_at: Mapped[dt.datetime]
    message: Mapped[str | None] = mapped_column(Text)
    fix: Mapped[bool | None]
    ns: Mapped[float | None] = mapped_column(Float)
    nd: Mapped[float | None] = mapped_column(Float)
    nf: Mapped[float | None] = mapped_column(Float)
    entropy: Mapped[float | None] = mapped_column(Float)
    la: Mapped[float | None] = mapped_column(Float)
    ld: Mapped[float | None] = mapped_column(Float)
    lt: Mapped[float | None] = mapped_column(Float)
    ndev: Mapped[float | None] = mapped_column(Float)
    age: Mapped[float | None] = mapped_column(Float)
    nuc: Mapped[float | None] = mapped_column(Float)
    exp: Mapped[float | None] = mapped_column(Float)
    rexp: Mapped[float | None] = mapped_column(Float)
    sexp: Mapped[float | None] = mapped_column(Float)
    prior_fixes: Mapped[float | None] = mapped_column(Float)
    recent_churn: Mapped[float | None] = mapped_column(Float)


class Deployment(Timestamps, Base):
    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(_in("status", DEPLOYMENT_STATUSES), name="status"),
        CheckConstraint(_in("kind", DEPLOYMENT_KINDS), name="kind"),
        Index(None, "service", "environment", "started_at"),
        Index(None, "image", "service"),  # which services ran an image: findings' tenant scope
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    service: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(32))
    cluster: Mapped[str | None] = mapped_column(String(128))
    image: Mapped[str | None] = mapped_column(String(512))
    version: Mapped[str | None] = mapped_column(String(128))
    commit_from: Mapped[str | None] = mapped_column(String(64))
    commit_to: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="release")
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    triggered_by: Mapped[str | None] = mapped_column(String(256))
    execution_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("pipeline_executions.id", ondelete="SET NULL")
    )


class DeploymentCommit(Base):
    """Which commits a deployment shipped (those after the previous deployment's)."""

    __tablename__ = "deployment_commits"

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    commit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("commits.id", ondelete="CASCADE"), primary_key=True
    )


class Incident(Timestamps, Base):
    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    service: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(512))
    opened_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]
    caused_by_deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL")
    )
    restored_by_deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL")
    )


class DoraMetric(Timestamps, Base):
    """One row per week, service (`*` for the organisation) and environment."""

    __tablename__ = "dora_metrics"
    __table_args__ = (UniqueConstraint("week_start", "service", "environment"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    week_start: Mapped[dt.date] = mapped_column(Date)
    service: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(32))
    deployments: Mapped[int] = mapped_column(Integer)
    deployments_per_day: Mapped[float] = mapped_column(Float)
    lead_time_hours_median: Mapped[float | None] = mapped_column(Float)
    change_failure_rate: Mapped[float | None] = mapped_column(Float)
    time_to_restore_hours_median: Mapped[float | None] = mapped_column(Float)
    rework_rate: Mapped[float | None] = mapped_column(Float)


class AuditEvent(Base):
    """Append-only, hash-chained record of every state-changing action."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(256), index=True)
    action: Mapped[str] = mapped_column(String(128), index=True)
    target: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# The other table modules share Base; importing them here puts every table on its metadata.
from timbel_dagster.warehouse.schema import (  # noqa: E402, F401
    backups,
    cluster,
    components,
    deploy,
    identity,
    ingestion,
    ml,
    notify,
    registry,
    security,
    security_issues,
    slo,
    templates,
)
