"""Execution logs: per stream, in chunks of whole lines, with full-text search on PostgreSQL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:07:02.418989
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "execution_logs",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["pipeline_executions.id"],
            name=op.f("fk_execution_logs_execution_id_pipeline_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "stream", name=op.f("pk_execution_logs")),
    )
    op.create_table(
        "execution_log_chunks",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=128), nullable=False),
        sa.Column("start_offset", sa.BigInteger(), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id", "stream"],
            ["execution_logs.execution_id", "execution_logs.stream"],
            name=op.f("fk_execution_log_chunks_execution_id_execution_logs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "execution_id", "stream", "start_offset", name=op.f("pk_execution_log_chunks")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        # `timbel logs search` uses PostgreSQL full-text search; SQLite scans with LIKE.
        op.execute(
            "CREATE INDEX ix_execution_log_chunks_fts ON execution_log_chunks "
            "USING gin (to_tsvector('simple', content))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_execution_log_chunks_fts")
    op.drop_table("execution_log_chunks")
    op.drop_table("execution_logs")
