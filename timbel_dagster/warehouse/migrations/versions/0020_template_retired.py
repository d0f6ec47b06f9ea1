"""pipeline_templates.retired_at, retired_by, retired_reason: a retired template (`timbel
template retire`, `DELETE /api/v1/templates/NAME`); all NULL while it is in use.

A retired template keeps its row and every version (history is not lost): it is hidden from
lists and takes no new versions or ratings until it is restored. Every template stored
before this revision is in use.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 10:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_templates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("retired_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("retired_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_templates", schema=None) as batch_op:
        batch_op.drop_column("retired_reason")
        batch_op.drop_column("retired_by")
        batch_op.drop_column("retired_at")
