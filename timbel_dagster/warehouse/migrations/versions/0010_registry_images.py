"""Container images seen in OCI registries (security/images).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_images",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("registry", sa.String(length=256), nullable=False),
        sa.Column("repository", sa.String(length=512), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=160), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=False),
        sa.Column("created", UTCDateTime(timezone=True), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("first_seen", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_images")),
        sa.UniqueConstraint(
            "registry",
            "repository",
            "tag",
            name=op.f("uq_registry_images_registry_repository_tag"),
        ),
    )
    with op.batch_alter_table("registry_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_images_digest"), ["digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("registry_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_images_digest"))

    op.drop_table("registry_images")
