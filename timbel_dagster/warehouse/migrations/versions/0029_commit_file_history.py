"""commits.prior_fixes and commits.recent_churn: the changed files' earlier fix commits and
the lines changed in them in the 30 days before (ml/changes/metrics.py; issue 16 item 2).

Nullable: rows stored before this revision have no value until `cicd/commits` walks their
repository again (it does on its next run, `ml.changes.store.stored_shas`), and a source that
does not know a commit's files stores none.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("commits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prior_fixes", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("recent_churn", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("commits", schema=None) as batch_op:
        batch_op.drop_column("recent_churn")
        batch_op.drop_column("prior_fixes")
