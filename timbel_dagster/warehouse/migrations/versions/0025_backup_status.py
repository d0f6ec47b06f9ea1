"""backups: a status (good | failed | pruned) with the error of a failed backup and when a
pruned one was deleted from the store, so the `backup_monitor` rules see failures and the
retention (`timbel backup prune`) leaves a trace of what it deleted (issue 17).

A failed backup's row has no file: size 0, sha256 '', rows 0 and no tables.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="good")
        )
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("pruned_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_backups_status_created_at"), ["status", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backups_status_created_at"))
        batch_op.drop_column("pruned_at")
        batch_op.drop_column("error")
        batch_op.drop_column("status")
