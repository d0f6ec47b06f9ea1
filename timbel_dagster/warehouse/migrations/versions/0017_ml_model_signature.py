"""ml_models.artifact_signature: the HMAC-SHA256 that must match before a model is unpickled.

Rows stored before this revision get NULL: they were never signed, so loading them is
refused until the model is retrained.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ml_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("artifact_signature", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ml_models", schema=None) as batch_op:
        batch_op.drop_column("artifact_signature")
