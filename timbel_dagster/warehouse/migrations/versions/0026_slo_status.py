"""slo_status: SLO, error budget and burn rates per SLO and evaluation (issue 17 item 4).

Revision ID: 0026
Revises: 0024
Create Date: 2026-12-05 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

BURN_COLUMNS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def upgrade() -> None:
    op.create_table(
        "slo_status",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("slo", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("objective", sa.Float(), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("good", sa.Float(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("sli", sa.Float(), nullable=True),
        sa.Column("budget_remaining", sa.Float(), nullable=True),
        *(sa.Column(f"burn_{window}", sa.Float(), nullable=True) for window in BURN_COLUMNS),
        sa.Column("alert", sa.String(length=8), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slo_status")),
        sa.UniqueConstraint(
            "service", "slo", "evaluated_at", name=op.f("uq_slo_status_service_slo_evaluated_at")
        ),
    )
    op.create_index(
        op.f("ix_slo_status_evaluated_at"), "slo_status", ["evaluated_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_slo_status_evaluated_at"), table_name="slo_status")
    op.drop_table("slo_status")
