"""service_leases: one `deploy` or `rollback` run at a time per service, whichever job it is.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 10:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_leases",
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_service_leases")),
    )


def downgrade() -> None:
    op.drop_table("service_leases")
