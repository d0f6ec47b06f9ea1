"""Warehouse tables of the security features: scanner runs and what they found.

`scan_results` has one row per scan. Each finding table has one row per finding per artifact
(`artifact_key`: the image digest, or the artifact's name when it has none), kept across
scans: `first_seen` / `last_seen` are the first and latest scans that reported it,
`fixed_at` the first later scan of the artifact that no longer did (cleared if it comes
back), and `last_scan_id` the latest scan that reported it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, Timestamps, _in

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SCAN_STATUSES = (
    "clean",  # the scanner ran and found nothing
    "findings",  # the scanner ran and found vulnerabilities, misconfigurations or secrets
    "failed",  # the scanner did not produce a report (`error` says why)
)


class ScanResult(Timestamps, Base):
    """One scan of one artifact."""

    __tablename__ = "scan_results"
    __table_args__ = (
        Unique("source", "scanner", "artifact_key", "scanned_at"),
        CheckConstraint(_in("status", SCAN_STATUSES), name="status"),
        Index(None, "artifact_key", "scanned_at"),
        # The gate's newest scan of an image: by digest, or by the name the scanner recorded.
        Index(None, "artifact_digest", "scanned_at"),
        Index(None, "artifact_name", "scanned_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    scanner: Mapped[str] = mapped_column(String(32))  # trivy
    scanner_version: Mapped[str | None] = mapped_column(String(64))
    artifact_name: Mapped[str] = mapped_column(String(512))
    artifact_type: Mapped[str] = mapped_column(String(64))  # container_image, filesystem, ...
    artifact_digest: Mapped[str | None] = mapped_column(String(128))
    artifact_key: Mapped[str] = mapped_column(String(512))  # digest, else name
    scanned_at: Mapped[dt.datetime]
    n_results: Mapped[int] = mapped_column(Integer, default=0)
    n_critical: Mapped[int] = mapped_column(Integer, default=0)
    n_high: Mapped[int] = mapped_column(Integer, default=0)
    n_medium: Mapped[int] = mapped_column(Integer, default=0)
    n_low: Mapped[int] = mapped_column(Integer, default=0)
    n_unknown: Mapped[int] = mapped_column(Integer, default=0)
    n_misconfigurations: Mapped[int] = mapped_column(Integer, default=0)  # failing checks
    n_secrets: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)


class _Finding(Timestamps):
    """Columns every finding table shares."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    artifact_key: Mapped[str] = mapped_column(String(512))
    artifact_name: Mapped[str] = mapped_column(String(512))
    target: Mapped[str] = mapped_column(String(1024))
    severity: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    fixed_at: Mapped[dt.datetime | None]
    last_scan_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("scan_results.id", ondelete="SET NULL")
    )


class VulnerabilityFinding(_Finding, Base):
    """One vulnerability of one package version in one target of one artifact."""

    __tablename__ = "vulnerability_findings"
    __table_args__ = (
        # Named by hand: the conventional name would pass PostgreSQL's 63-character limit.
        Unique(
            "artifact_key",
            "target",
            "vulnerability_id",
            "pkg_name",
            "installed_version",
            name="uq_vulnerability_findings_natural_key",
        ),
        CheckConstraint(_in("severity", SEVERITIES), name="severity"),
        Index(None, "vulnerability_id"),
        Index(None, "fixed_at", "severity"),
    )

    vulnerability_id: Mapped[str] = mapped_column(String(128))
    pkg_name: Mapped[str] = mapped_column(String(512))
    installed_version: Mapped[str] = mapped_column(String(256))
    pkg_id: Mapped[str | None] = mapped_column(String(1024))
    fixed_version: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str | None] = mapped_column(String(32))  # Trivy's: fixed, affected, ...
    title: Mapped[str | None] = mapped_column(Text)
    primary_url: Mapped[str | None] = mapped_column(String(1024))
    cvss_score: Mapped[float | None] = mapped_column(Float)
    cvss_vector: Mapped[str | None] = mapped_column(String(256))


class MisconfigurationFinding(_Finding, Base):
    """One failing check on one resource of one target of one artifact.

    `fingerprint` (SHA-256 of the resource and message) tells apart failures of the same
    check on different resources without putting long text in the unique key; line numbers
    stay out of it, so an edit that only moves the code keeps the finding.
    """

    __tablename__ = "misconfiguration_findings"
    __table_args__ = (
        Unique(
            "artifact_key",
            "target",
            "check_id",
            "fingerprint",
            name="uq_misconfiguration_findings_natural_key",
        ),
        CheckConstraint(_in("severity", SEVERITIES), name="severity"),
    )

    check_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    check_type: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)
    resource: Mapped[str | None] = mapped_column(String(512))
    start_line: Mapped[int | None] = mapped_column(Integer)
    end_line: Mapped[int | None] = mapped_column(Integer)
    primary_url: Mapped[str | None] = mapped_column(String(1024))


class SecretFinding(_Finding, Base):
    """One secret found by one rule in one file of one artifact.

    `fingerprint` is the SHA-256 of Trivy's (masked) matching line, so the same secret keeps
    its row when lines above it move.
    """

    __tablename__ = "secret_findings"
    __table_args__ = (
        Unique(
            "artifact_key",
            "target",
            "rule_id",
            "fingerprint",
            name="uq_secret_findings_natural_key",
        ),
        CheckConstraint(_in("severity", SEVERITIES), name="severity"),
    )

    rule_id: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(Text)
    start_line: Mapped[int | None] = mapped_column(Integer)
    end_line: Mapped[int | None] = mapped_column(Integer)
    match: Mapped[str | None] = mapped_column(Text)  # masked by Trivy
