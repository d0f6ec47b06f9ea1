"""Indexes for the reads that select executions by completion time, which read
pipeline_executions whole without them:
- `(pipeline_id, completed_at)`: an SLO's warehouse SLI (`slo/counts.py`) counts the
  executions of a service's pipelines that finished in its window (30 days by default); the
  `(pipeline_id, started_at)` index cannot bound that range;
- `(completed_at)`: the `pipeline_failure_rate` alert fact (`notify/facts.py`) counts the
  executions of every pipeline that finished in the last hour, which no index leading with
  the pipeline serves.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 09:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_pipeline_executions_pipeline_id_completed_at", "pipeline_executions",
     ["pipeline_id", "completed_at"]),
    ("ix_pipeline_executions_completed_at", "pipeline_executions", ["completed_at"]),
)  # fmt: skip


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
