"""Pipeline templates: versions, marketplace, ratings.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _template_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["template_id"],
        ["pipeline_templates.id"],
        name=op.f(f"fk_{table}_template_id_pipeline_templates"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "pipeline_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint(
            "kind IN ('jenkinsfile', 'gitlab-ci')", name=op.f("ck_pipeline_templates_kind")
        ),
        sa.CheckConstraint(
            "visibility IN ('private', 'team', 'public')",
            name=op.f("ck_pipeline_templates_visibility"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_pipeline_templates_name")),
    )
    op.create_table(
        "pipeline_template_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("release_notes", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _at("created_at"),
        sa.Column("rollback_of_version", sa.Integer(), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_pipeline_template_versions_version")),
        _template_fk("pipeline_template_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_template_versions")),
        sa.UniqueConstraint(
            "template_id",
            "version",
            name=op.f("uq_pipeline_template_versions_template_id_version"),
        ),
    )
    op.create_table(
        "pipeline_template_tags",
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        _at("updated_at"),
        _template_fk("pipeline_template_tags"),
        sa.PrimaryKeyConstraint("template_id", "tag", name=op.f("pk_pipeline_template_tags")),
    )
    op.create_table(
        "pipeline_template_shares",
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("grantee_kind", sa.String(length=8), nullable=False),
        sa.Column("grantee", sa.String(length=128), nullable=False),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        _at("created_at"),
        sa.CheckConstraint(
            "grantee_kind IN ('user', 'team')",
            name=op.f("ck_pipeline_template_shares_grantee_kind"),
        ),
        _template_fk("pipeline_template_shares"),
        sa.PrimaryKeyConstraint(
            "template_id", "grantee_kind", "grantee", name=op.f("pk_pipeline_template_shares")
        ),
    )
    op.create_table(
        "pipeline_template_ratings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("review", sa.Text(), nullable=False),
        _at("created_at"),
        sa.CheckConstraint(
            "stars BETWEEN 1 AND 5", name=op.f("ck_pipeline_template_ratings_stars")
        ),
        _template_fk("pipeline_template_ratings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_template_ratings")),
        sa.UniqueConstraint(
            "template_id", "user", name=op.f("uq_pipeline_template_ratings_template_id_user")
        ),
    )
    op.create_table(
        "pipeline_template_usage",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=False),
        sa.Column("applied_by", sa.String(length=128), nullable=False),
        _at("applied_at"),
        sa.CheckConstraint(
            "target_kind IN ('repository', 'jenkins')",
            name=op.f("ck_pipeline_template_usage_target_kind"),
        ),
        _template_fk("pipeline_template_usage"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_template_usage")),
    )
    with op.batch_alter_table("pipeline_template_usage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_template_usage_template_id_applied_at"),
            ["template_id", "applied_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("pipeline_template_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_template_usage_template_id_applied_at"))

    op.drop_table("pipeline_template_usage")
    op.drop_table("pipeline_template_ratings")
    op.drop_table("pipeline_template_shares")
    op.drop_table("pipeline_template_tags")
    op.drop_table("pipeline_template_versions")
    op.drop_table("pipeline_templates")
