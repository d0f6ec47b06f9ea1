"""pipeline_executions.sequence: the source's numeric order of executions, for high-water marks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:43:50.084918
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_pipeline_executions_pipeline_id_sequence"),
            ["pipeline_id", "sequence"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("pipeline_executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_executions_pipeline_id_sequence"))
        batch_op.drop_column("sequence")
