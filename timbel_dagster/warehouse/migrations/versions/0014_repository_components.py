"""Repository component analyses and their dependencies (security/components).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "repository_analyses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("repository", sa.String(length=1024), nullable=False),
        _at("analysed_at"),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("files_scanned", sa.Integer(), nullable=False),
        sa.Column("languages", JSON, nullable=False),
        sa.Column("frameworks", JSON, nullable=False),
        sa.Column("build_tools", JSON, nullable=False),
        sa.Column("dockerfiles", JSON, nullable=False),
        sa.Column("ci_files", JSON, nullable=False),
        sa.Column("manifests", JSON, nullable=False),
        sa.Column("sbom", JSON, nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repository_analyses")),
        sa.UniqueConstraint("repository", name=op.f("uq_repository_analyses_repository")),
    )
    op.create_table(
        "repository_dependencies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("repository", sa.String(length=1024), nullable=False),
        sa.Column("ecosystem", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("version", sa.String(length=256), nullable=True),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("manifest", sa.String(length=1024), nullable=False),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repository_dependencies")),
        sa.UniqueConstraint(
            "repository",
            "ecosystem",
            "name",
            "version",
            "manifest",
            name=op.f("uq_repository_dependencies_natural_key"),
        ),
    )
    with op.batch_alter_table("repository_dependencies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repository_dependencies_ecosystem_name"),
            ["ecosystem", "name"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("repository_dependencies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_repository_dependencies_ecosystem_name"))
    op.drop_table("repository_dependencies")
    op.drop_table("repository_analyses")
