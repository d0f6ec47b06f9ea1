"""Initial schema: pipelines, executions, stages, commits, deployments, incidents, DORA, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:19:24.154186
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("action", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)

    op.create_table(
        "clusters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("environment_group", sa.String(length=32), nullable=False),
        sa.Column("api_url", sa.String(length=512), nullable=True),
        sa.Column("kubernetes_version", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "environment_group IN ('dev', 'staging', 'prod')", name=op.f("ck_clusters_group")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
        sa.UniqueConstraint("name", name=op.f("uq_clusters_name")),
    )
    op.create_table(
        "commits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("repository", sa.String(length=512), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=256), nullable=True),
        sa.Column("authored_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "committed_at",
            UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("fix", sa.Boolean(), nullable=True),
        sa.Column("ns", sa.Float(), nullable=True),
        sa.Column("nd", sa.Float(), nullable=True),
        sa.Column("nf", sa.Float(), nullable=True),
        sa.Column("entropy", sa.Float(), nullable=True),
        sa.Column("la", sa.Float(), nullable=True),
        sa.Column("ld", sa.Float(), nullable=True),
        sa.Column("lt", sa.Float(), nullable=True),
        sa.Column("ndev", sa.Float(), nullable=True),
        sa.Column("age", sa.Float(), nullable=True),
        sa.Column("nuc", sa.Float(), nullable=True),
        sa.Column("exp", sa.Float(), nullable=True),
        sa.Column("rexp", sa.Float(), nullable=True),
        sa.Column("sexp", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commits")),
        sa.UniqueConstraint("repository", "sha", name=op.f("uq_commits_repository_sha")),
    )
    op.create_table(
        "dora_metrics",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("deployments", sa.Integer(), nullable=False),
        sa.Column("deployments_per_day", sa.Float(), nullable=False),
        sa.Column("lead_time_hours_median", sa.Float(), nullable=True),
        sa.Column("change_failure_rate", sa.Float(), nullable=True),
        sa.Column("time_to_restore_hours_median", sa.Float(), nullable=True),
        sa.Column("rework_rate", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dora_metrics")),
        sa.UniqueConstraint(
            "week_start",
            "service",
            "environment",
            name=op.f("uq_dora_metrics_week_start_service_environment"),
        ),
    )
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("ci_system", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=True),
        sa.Column("repository", sa.String(length=512), nullable=True),
        sa.Column("default_branch", sa.String(length=256), nullable=True),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
        sa.UniqueConstraint("source", "name", name=op.f("uq_pipelines_source_name")),
    )
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pipelines_service"), ["service"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("slack_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('developer', 'team_lead', 'operations', 'admin', 'viewer')",
            name=op.f("ck_users_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "pipeline_executions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("triggered_by", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("queue_seconds", sa.Float(), nullable=True),
        sa.Column("logs", sa.Text(), nullable=True),
        sa.Column(
            "artifacts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("commit_sha", sa.String(length=64), nullable=True),
        sa.Column("branch", sa.String(length=256), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'success', 'failed', 'aborted')",
            name=op.f("ck_pipeline_executions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_executions_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_executions")),
        sa.UniqueConstraint(
            "source",
            "pipeline_id",
            "external_id",
            name=op.f("uq_pipeline_executions_source_pipeline_id_external_id"),
        ),
    )
    with op.batch_alter_table("pipeline_executions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_executions_commit_sha"), ["commit_sha"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pipeline_executions_pipeline_id_started_at"),
            ["pipeline_id", "started_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_pipeline_executions_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "deployments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("cluster", sa.String(length=128), nullable=True),
        sa.Column("image", sa.String(length=512), nullable=True),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("commit_from", sa.String(length=64), nullable=True),
        sa.Column("commit_to", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("triggered_by", sa.String(length=256), nullable=True),
        sa.Column("execution_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('release', 'hotfix', 'rollback')", name=op.f("ck_deployments_kind")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'success', 'failed', 'rolled_back')",
            name=op.f("ck_deployments_status"),
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["pipeline_executions.id"],
            name=op.f("fk_deployments_execution_id_pipeline_executions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f("uq_deployments_source_external_id")
        ),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deployments_service_environment_started_at"),
            ["service", "environment", "started_at"],
            unique=False,
        )

    op.create_table(
        "stage_executions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("parent_name", sa.String(length=256), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("queue_seconds", sa.Float(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'success', 'failed', 'aborted', 'skipped')",
            name=op.f("ck_stage_executions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["pipeline_executions.id"],
            name=op.f("fk_stage_executions_execution_id_pipeline_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_executions")),
        sa.UniqueConstraint(
            "execution_id", "external_id", name=op.f("uq_stage_executions_execution_id_external_id")
        ),
    )
    op.create_table(
        "deployment_commits",
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("commit_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["commit_id"],
            ["commits.id"],
            name=op.f("fk_deployment_commits_commit_id_commits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_commits_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment_id", "commit_id", name=op.f("pk_deployment_commits")),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=512), nullable=False),
        sa.Column("opened_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("caused_by_deployment_id", sa.Uuid(), nullable=True),
        sa.Column("restored_by_deployment_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["caused_by_deployment_id"],
            ["deployments.id"],
            name=op.f("fk_incidents_caused_by_deployment_id_deployments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["restored_by_deployment_id"],
            ["deployments.id"],
            name=op.f("fk_incidents_restored_by_deployment_id_deployments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_incidents_source_external_id")),
    )


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("deployment_commits")
    op.drop_table("stage_executions")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_service_environment_started_at"))

    op.drop_table("deployments")
    with op.batch_alter_table("pipeline_executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_executions_started_at"))
        batch_op.drop_index(batch_op.f("ix_pipeline_executions_pipeline_id_started_at"))
        batch_op.drop_index(batch_op.f("ix_pipeline_executions_commit_sha"))

    op.drop_table("pipeline_executions")
    op.drop_table("users")
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipelines_service"))

    op.drop_table("pipelines")
    op.drop_table("dora_metrics")
    op.drop_table("commits")
    op.drop_table("clusters")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
