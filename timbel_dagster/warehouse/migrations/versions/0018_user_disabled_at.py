"""users.disabled_at: when a person was disabled (`timbel users disable`); NULL while enabled.

A disabled user stays in the table, so the audit log and past requests still name them,
but may no longer act. Every row stored before this revision is enabled.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "disabled_at",
                UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
