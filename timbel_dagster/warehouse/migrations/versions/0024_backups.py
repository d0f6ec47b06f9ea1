"""backups: the catalogue of the warehouse's backups (`timbel backup create`, issue 17).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 12:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import JSONType, UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("tables", JSONType, nullable=False),
        sa.Column("schema_revision", sa.String(length=32), nullable=True),
        sa.Column("audit_head_id", sa.Integer(), nullable=True),
        sa.Column("audit_head_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    op.create_index(op.f("ix_backups_created_at"), "backups", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_backups_created_at"), table_name="backups")
    op.drop_table("backups")
