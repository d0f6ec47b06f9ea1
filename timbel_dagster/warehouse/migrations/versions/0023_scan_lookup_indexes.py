"""Indexes for the deploy gate's image lookups, which read whole tables without them:
- `registry_images (repository, tag)`: a tag is resolved by `lower(registry) IN (...)`, which
  the unique (registry, repository, tag) index cannot serve (its first column is wrapped in a
  function);
- `scan_results (artifact_digest, scanned_at)` and `(artifact_name, scanned_at)`: the newest
  scan of an image is found by digest (`artifact_digest = d OR artifact_key = d`, a BitmapOr
  with the existing artifact_key index) or, for a tag nothing resolves, by the name the
  scanner recorded; the security routes' tenant scope joins on the name too.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 12:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_registry_images_repository_tag", "registry_images", ["repository", "tag"]),
    ("ix_scan_results_artifact_digest_scanned_at", "scan_results",
     ["artifact_digest", "scanned_at"]),
    ("ix_scan_results_artifact_name_scanned_at", "scan_results", ["artifact_name", "scanned_at"]),
)  # fmt: skip


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
