"""GitLab issues of vulnerability findings, and SonarQube quality gates.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "security_issue_links",
        sa.Column("finding_id", sa.Uuid(), nullable=False),
        sa.Column("project", sa.String(length=256), nullable=False),
        sa.Column("issue_iid", sa.Integer(), nullable=False),
        sa.Column("web_url", sa.String(length=1024), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        _at("opened_at"),
        _at("closed_at", nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint(
            "state IN ('opened', 'closed')", name=op.f("ck_security_issue_links_state")
        ),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["vulnerability_findings.id"],
            name=op.f("fk_security_issue_links_finding_id_vulnerability_findings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("finding_id", "project", name=op.f("pk_security_issue_links")),
        sa.UniqueConstraint(
            "project", "issue_iid", name=op.f("uq_security_issue_links_project_issue_iid")
        ),
    )
    with op.batch_alter_table("security_issue_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_security_issue_links_project_state"), ["project", "state"], unique=False
        )

    op.create_table(
        "quality_gates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("project_key", sa.String(length=400), nullable=False),
        _at("analysed_at"),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("conditions", JSON, nullable=False),
        sa.Column("measures", JSON, nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint(
            "status IN ('OK', 'WARN', 'ERROR', 'NONE')", name=op.f("ck_quality_gates_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_gates")),
        sa.UniqueConstraint(
            "project_key", "analysed_at", name=op.f("uq_quality_gates_project_key_analysed_at")
        ),
    )


def downgrade() -> None:
    op.drop_table("quality_gates")
    with op.batch_alter_table("security_issue_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_security_issue_links_project_state"))
    op.drop_table("security_issue_links")
