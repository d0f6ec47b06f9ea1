"""Warehouse rows of a parsed Trivy report: the scan's row and each finding table's rows.

Plain functions, no database: `scan_import` adds the first/last-seen bookkeeping and writes
them. Every value is checked against its column here, so a report that cannot be stored is
refused before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.trivy import SEVERITIES, ScanReport

if TYPE_CHECKING:
    from sqlalchemy import Table

SCANNER = "trivy"
SCAN_KEY = ("source", "scanner", "artifact_key", "scanned_at")
VULNERABILITY_KEY = ("artifact_key", "target", "vulnerability_id", "pkg_name", "installed_version")
MISCONFIGURATION_KEY = ("artifact_key", "target", "check_id", "fingerprint")
SECRET_KEY = ("artifact_key", "target", "rule_id", "fingerprint")


def _sha256(*parts: str | None) -> str:
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()


def summary(report: ScanReport) -> dict[str, Any]:
    """What a report holds: result and finding counts, vulnerabilities per severity.

    `vulnerabilities` counts the report's entries (one vulnerability in two packages is
    two); `distinct_ids` the distinct vulnerability ids; `misconfigurations` the failing
    checks only.
    """
    vulnerabilities = report.vulnerabilities
    counts = Counter(v.severity for v in vulnerabilities)
    return {
        "results": len(report.results),
        "vulnerabilities": len(vulnerabilities),
        "by_severity": {severity: counts.get(severity, 0) for severity in SEVERITIES},
        "distinct_ids": len({v.vulnerability_id for v in vulnerabilities}),
        "misconfigurations": sum(m.failed for m in report.misconfigurations),
        "secrets": len(report.secrets),
    }


def scan_row(
    report: ScanReport, source: str, scan_id: Any, scanned_at: dt.datetime
) -> dict[str, Any]:
    counts = summary(report)
    found = counts["vulnerabilities"] + counts["misconfigurations"] + counts["secrets"]
    return {
        "id": scan_id,
        "source": source,
        "scanner": SCANNER,
        "scanner_version": report.scanner_version,
        "artifact_name": report.artifact_name,
        "artifact_type": report.artifact_type,
        "artifact_digest": report.artifact_digest,
        "artifact_key": report.artifact_key,
        "scanned_at": scanned_at,
        "n_results": counts["results"],
        **{f"n_{s.lower()}": n for s, n in counts["by_severity"].items()},
        "n_misconfigurations": counts["misconfigurations"],
        "n_secrets": counts["secrets"],
        "status": "findings" if found else "clean",
        "error": None,
    }


def _common(report: ScanReport, source: str, target: str, severity: str) -> dict[str, Any]:
    return {
        "source": source,
        "artifact_key": report.artifact_key,
        "artifact_name": report.artifact_name,
        "target": target,
        "severity": severity,
    }


def vulnerability_rows(report: ScanReport, source: str) -> list[dict[str, Any]]:
    return [
        _common(report, source, v.target, v.severity)
        | {
            "vulnerability_id": v.vulnerability_id,
            "pkg_name": v.pkg_name,
            "installed_version": v.installed_version,
            "pkg_id": v.pkg_id,
            "fixed_version": v.fixed_version,
            "status": v.status,
            "title": v.title,
            "primary_url": v.primary_url,
            "cvss_score": v.cvss_score,
            "cvss_vector": v.cvss_vector,
        }
        for v in report.vulnerabilities
    ]


def misconfiguration_rows(report: ScanReport, source: str) -> list[dict[str, Any]]:
    return [
        _common(report, source, m.target, m.severity)
        | {
            "check_id": m.check_id,
            "fingerprint": _sha256(m.resource, m.message),
            "check_type": m.check_type,
            "title": m.title,
            "message": m.message,
            "resolution": m.resolution,
            "resource": m.resource,
            "start_line": m.start_line,
            "end_line": m.end_line,
            "primary_url": m.primary_url,
        }
        for m in report.misconfigurations
        if m.failed
    ]


def secret_rows(report: ScanReport, source: str) -> list[dict[str, Any]]:
    return [
        _common(report, source, s.target, s.severity)
        | {
            "rule_id": s.rule_id,
            "fingerprint": _sha256(s.match if s.match else f"line {s.start_line}"),
            "category": s.category,
            "title": s.title,
            "start_line": s.start_line,
            "end_line": s.end_line,
            "match": s.match,
        }
        for s in report.secrets
    ]


def check_rows(table: Table, rows: list[dict[str, Any]], key: tuple[str, ...]) -> None:
    """Refuse a severity the table does not allow, or a value longer than its column
    (PostgreSQL would fail mid-import; SQLite would store it), naming the finding."""
    if not rows:
        return
    limits = [
        (c.name, c.type.length)
        for c in table.c
        if getattr(c.type, "length", None) and c.name in rows[0]
    ]
    allowed = set(SEVERITIES)

    def name(row: dict[str, Any]) -> str:
        return " ".join(str(row[k]) for k in key[1:] if k != "fingerprint")

    for row in rows:
        if "severity" in row and row["severity"] not in allowed:
            raise ValueError(
                f"{table.name}: severity of {name(row)} is {row['severity']!r}, "
                f"not one of {', '.join(SEVERITIES)}"
            )
        for column, limit in limits:
            value = row[column]
            if value is not None and len(value) > limit:
                raise ValueError(
                    f"{table.name}: {column} of {name(row)} is {len(value)} characters long, "
                    f"more than the {limit} the warehouse stores"
                )
