"""Trigram indexes for substring search (issue 15), PostgreSQL only: `pg_trgm` and GIN
`gin_trgm_ops` indexes on `execution_log_chunks.content` and
`pipeline_executions.error_message`, which serve `ILIKE '%text%'` (a log search that
full-text search cannot answer, and `timbel executions list --search`) instead of a read of
every chunk. SQLite: nothing (it scans, as before).

How the indexes are built. `warehouse.migrate` runs every revision of an upgrade and its
audit event in one transaction, so that a failed upgrade leaves nothing half done. `CREATE
INDEX CONCURRENTLY` cannot run in a transaction block, and neither way out fits that:
Alembic's `autocommit_block()` commits the surrounding transaction (with an external one, as
here, it fails an assertion) and a second connection's `CONCURRENTLY` would wait forever
for this transaction's snapshot to end. So the indexes are built by a plain `CREATE INDEX IF
NOT EXISTS` inside the upgrade: reads of both tables go on, writes to them (log ingestion)
wait until the build ends: 13 s for the 200,000 chunks (142 MiB) of 1,000,000 executions
on the 2-core development machine (docs/benchmarks.md, api_explain), longer for logs of
more varied text than the benchmark's. An operator with a bigger warehouse creates the same
indexes with `CONCURRENTLY` before upgrading (docs/operations.md gives the statements); the
upgrade then finds them and builds nothing.

Without the right to create the extension (a managed PostgreSQL whose Timbel role may not
`CREATE` in the database; pg_trgm is a trusted extension, so the database's owner may) or
without the contrib package installed, the upgrade does not fail: it logs a warning, creates
neither index, and search keeps working by reading every chunk. docs/operations.md says how
an administrator adds them afterwards.

The downgrade drops the indexes, not the extension: it may have been there before, and other
objects or users of the database may rely on it; it holds no data.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 11:30:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

# (index, table, column): the same names as the models' `Index` declarations.
TRIGRAM_INDEXES = (
    ("ix_execution_log_chunks_content_trgm", "execution_log_chunks", "content"),
    ("ix_pipeline_executions_error_message_trgm", "pipeline_executions", "error_message"),
)


def _has_trigram_extension(bind: sa.engine.Connection) -> bool:
    """pg_trgm is installed in this database, created here if needed and allowed."""
    installed = "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"
    if bind.execute(sa.text(installed)).first():
        return True
    try:
        # A savepoint: a refused CREATE EXTENSION must not abort the upgrade's transaction.
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        log.warning(
            "pg_trgm is not available (%s): the trigram indexes for log search were not "
            "created and substring search reads every log chunk. An administrator can add "
            "them: see 'Log search on PostgreSQL' in docs/operations.md",
            reason,
        )
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _has_trigram_extension(bind):
        return
    for name, table, column in TRIGRAM_INDEXES:
        # One an interrupted `CREATE INDEX CONCURRENTLY` left invalid is built again.
        invalid = bind.execute(
            sa.text(
                "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(:name) AND NOT indisvalid"
            ),
            {"name": name},
        ).first()
        if invalid:
            op.execute(f"DROP INDEX {name}")
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _column in reversed(TRIGRAM_INDEXES):
        op.execute(f"DROP INDEX IF EXISTS {name}")
