"""Scanner runs, vulnerability findings, misconfigurations and secrets.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SEVERITY_CHECK = "severity IN ('CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN')"


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _finding_table(table: str, own_columns: list[sa.Column], key: list[str]) -> None:
    """A finding table: the columns every finding shares, then the table's own."""
    op.create_table(
        table,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("artifact_key", sa.String(length=512), nullable=False),
        sa.Column("artifact_name", sa.String(length=512), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=False),
        *own_columns,
        sa.Column("severity", sa.String(length=16), nullable=False),
        _timestamp("first_seen"),
        _timestamp("last_seen"),
        _timestamp("fixed_at", nullable=True),
        sa.Column("last_scan_id", sa.Uuid(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(SEVERITY_CHECK, name=op.f(f"ck_{table}_severity")),
        sa.ForeignKeyConstraint(
            ["last_scan_id"],
            ["scan_results.id"],
            name=op.f(f"fk_{table}_last_scan_id_scan_results"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint(*key, name=f"uq_{table}_natural_key"),
    )


def upgrade() -> None:
    op.create_table(
        "scan_results",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("scanner", sa.String(length=32), nullable=False),
        sa.Column("scanner_version", sa.String(length=64), nullable=True),
        sa.Column("artifact_name", sa.String(length=512), nullable=False),
        sa.Column("artifact_type", sa.String(length=64), nullable=False),
        sa.Column("artifact_digest", sa.String(length=128), nullable=True),
        sa.Column("artifact_key", sa.String(length=512), nullable=False),
        _timestamp("scanned_at"),
        sa.Column("n_results", sa.Integer(), nullable=False),
        sa.Column("n_critical", sa.Integer(), nullable=False),
        sa.Column("n_high", sa.Integer(), nullable=False),
        sa.Column("n_medium", sa.Integer(), nullable=False),
        sa.Column("n_low", sa.Integer(), nullable=False),
        sa.Column("n_unknown", sa.Integer(), nullable=False),
        sa.Column("n_misconfigurations", sa.Integer(), nullable=False),
        sa.Column("n_secrets", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('clean', 'findings', 'failed')", name=op.f("ck_scan_results_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_results")),
        sa.UniqueConstraint(
            "source",
            "scanner",
            "artifact_key",
            "scanned_at",
            name=op.f("uq_scan_results_source_scanner_artifact_key_scanned_at"),
        ),
    )
    with op.batch_alter_table("scan_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scan_results_artifact_key_scanned_at"),
            ["artifact_key", "scanned_at"],
            unique=False,
        )

    _finding_table(
        "vulnerability_findings",
        [
            sa.Column("vulnerability_id", sa.String(length=128), nullable=False),
            sa.Column("pkg_name", sa.String(length=512), nullable=False),
            sa.Column("installed_version", sa.String(length=256), nullable=False),
            sa.Column("pkg_id", sa.String(length=1024), nullable=True),
            sa.Column("fixed_version", sa.String(length=512), nullable=True),
            sa.Column("status", sa.String(length=32), nullable=True),
            sa.Column("title", sa.Text(), nullable=True),
            sa.Column("primary_url", sa.String(length=1024), nullable=True),
            sa.Column("cvss_score", sa.Float(), nullable=True),
            sa.Column("cvss_vector", sa.String(length=256), nullable=True),
        ],
        ["artifact_key", "target", "vulnerability_id", "pkg_name", "installed_version"],
    )
    with op.batch_alter_table("vulnerability_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vulnerability_findings_vulnerability_id"),
            ["vulnerability_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_vulnerability_findings_fixed_at_severity"),
            ["fixed_at", "severity"],
            unique=False,
        )

    _finding_table(
        "misconfiguration_findings",
        [
            sa.Column("check_id", sa.String(length=64), nullable=False),
            sa.Column("fingerprint", sa.String(length=64), nullable=False),
            sa.Column("check_type", sa.String(length=128), nullable=True),
            sa.Column("title", sa.Text(), nullable=True),
            sa.Column("message", sa.Text(), nullable=True),
            sa.Column("resolution", sa.Text(), nullable=True),
            sa.Column("resource", sa.String(length=512), nullable=True),
            sa.Column("start_line", sa.Integer(), nullable=True),
            sa.Column("end_line", sa.Integer(), nullable=True),
            sa.Column("primary_url", sa.String(length=1024), nullable=True),
        ],
        ["artifact_key", "target", "check_id", "fingerprint"],
    )

    _finding_table(
        "secret_findings",
        [
            sa.Column("rule_id", sa.String(length=128), nullable=False),
            sa.Column("fingerprint", sa.String(length=64), nullable=False),
            sa.Column("category", sa.String(length=128), nullable=True),
            sa.Column("title", sa.Text(), nullable=True),
            sa.Column("start_line", sa.Integer(), nullable=True),
            sa.Column("end_line", sa.Integer(), nullable=True),
            sa.Column("match", sa.Text(), nullable=True),
        ],
        ["artifact_key", "target", "rule_id", "fingerprint"],
    )


def downgrade() -> None:
    op.drop_table("secret_findings")
    op.drop_table("misconfiguration_findings")
    with op.batch_alter_table("vulnerability_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vulnerability_findings_fixed_at_severity"))
        batch_op.drop_index(batch_op.f("ix_vulnerability_findings_vulnerability_id"))
    op.drop_table("vulnerability_findings")
    with op.batch_alter_table("scan_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scan_results_artifact_key_scanned_at"))
    op.drop_table("scan_results")
