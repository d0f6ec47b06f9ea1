"""registry_images.revision: the commit an image was built from, from its config's labels.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_images", schema=None) as batch_op:
        batch_op.drop_column("revision")
