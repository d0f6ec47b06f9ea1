"""Tolerant CI ingestion: `ingestion_rejects`, status `unknown`, stage error text.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_OLD = ("pending", "running", "success", "failed", "aborted")
_NEW = (*_OLD, "unknown")


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _in(values: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def _statuses(execution: tuple[str, ...], stage: tuple[str, ...]) -> None:
    for table, values in (("pipeline_executions", execution), ("stage_executions", stage)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
            batch_op.create_check_constraint(op.f(f"ck_{table}_status"), _in(values))


def upgrade() -> None:
    op.create_table(
        "ingestion_rejects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("pipeline", sa.String(length=512), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        _at("first_seen"),
        _at("last_seen"),
        sa.Column("times_seen", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_rejects")),
        sa.UniqueConstraint(
            "source",
            "kind",
            "pipeline",
            "key",
            name=op.f("uq_ingestion_rejects_source_kind_pipeline_key"),
        ),
    )
    with op.batch_alter_table("ingestion_rejects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingestion_rejects_source_pipeline_sequence"),
            ["source", "pipeline", "sequence"],
            unique=False,
        )
    with op.batch_alter_table("stage_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_message", sa.Text(), nullable=True))
    _statuses(_NEW, (*_NEW, "skipped"))


def downgrade() -> None:
    for table in ("pipeline_executions", "stage_executions"):
        # `table` is one of the two literal names above.
        unknown_to_failed = f"UPDATE {table} SET status = 'failed' WHERE status = 'unknown'"  # nosec B608
        op.execute(sa.text(unknown_to_failed))
    _statuses(_OLD, (*_OLD, "skipped"))
    with op.batch_alter_table("stage_executions", schema=None) as batch_op:
        batch_op.drop_column("error_message")
    with op.batch_alter_table("ingestion_rejects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingestion_rejects_source_pipeline_sequence"))
    op.drop_table("ingestion_rejects")
