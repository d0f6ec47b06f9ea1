"""Scanning and storing, with the audit event: what the CLI, the job and the asset share.

Each report is stored in one transaction together with its audit event. A scan that fails
is stored too, as a `failed` scan row with the error (and audited), then re-raised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timbel_dagster.resources.trivy import ScannerError, check_image_reference
from timbel_dagster.security.scan_import import import_report, record_scan_failure
from timbel_dagster.warehouse.audit.chain import append_event

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.records.trivy import ScanReport
    from timbel_dagster.resources.trivy import TrivyResource

SOURCE = "trivy"
_AUDITED = ("results", "vulnerabilities", "by_severity", "distinct_ids", "misconfigurations",
            "secrets", "scan_id", "artifact_key", "status")  # fmt: skip


def store_report(
    engine: Engine,
    report: ScanReport,
    *,
    actor: str,
    action: str,
    source: str = SOURCE,
    scanned_at: dt.datetime | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Import `report` and append its audit event in one transaction; returns the summary
    of `scan_import.import_report`."""

    with engine.begin() as connection:
        summary = import_report(connection, report, source=source, scanned_at=scanned_at)
        append_event(
            connection,
            actor=actor,
            action=action,
            target=report.artifact_name,
            details={k: summary[k] for k in _AUDITED} | (details or {}),
        )
    return summary


def _store_failure(engine: Engine, ref: str, error: Exception, actor: str, source: str) -> None:
    with engine.begin() as connection:
        scan_id = record_scan_failure(
            connection, source=source, artifact_name=ref, error=str(error)
        )
        append_event(
            connection,
            actor=actor,
            action="scan.image",
            target=ref,
            details={"status": "failed", "scan_id": scan_id, "error": str(error)[:1000]},
        )


def scan_image(
    trivy: TrivyResource, engine: Engine, ref: str, *, actor: str, source: str = SOURCE
) -> dict[str, Any]:
    """Scan image `ref` with Trivy and store the report (audited as `scan.image`).

    Raises:
        ScannerError: Trivy failed; the failed scan is stored and audited first.
        ValueError: `ref` is not an image reference (refused before anything runs or is
            stored), or the report cannot be stored (recorded first, as a failure is).
    """
    check_image_reference(ref)
    try:
        report = trivy.scan_image(ref)
        return store_report(engine, report, actor=actor, action="scan.image", source=source)
    except (ScannerError, ValueError) as error:
        _store_failure(engine, ref, error, actor, source)
        raise


def scan_images(
    trivy: TrivyResource,
    engine: Engine,
    refs: list[str],
    *,
    actor: str,
    log: Callable[[str], None],
    source: str = SOURCE,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Scan and store each image in turn; a failed one is logged and the others still run.

    Returns:
        The summaries of the stored scans, and `{"image", "error"}` for each failed one
        (the error names the image).
    """
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for ref in refs:
        try:
            summary = scan_image(trivy, engine, ref, actor=actor, source=source)
        except (ScannerError, ValueError) as error:
            message = str(error) if ref in str(error) else f"{ref}: {error}"
            failed.append({"image": ref, "error": message})
            log(f"scan failed: {message}")
            continue
        stored.append(summary)
        log(f"{ref}: {describe(summary)}")
    return stored, failed


def describe(summary: dict[str, Any]) -> str:
    """One line about one stored scan."""
    severities = ", ".join(f"{s} {n}" for s, n in summary["by_severity"].items())
    changes = summary["changes"]
    new = sum(c["new"] for c in changes.values())
    fixed = sum(c["fixed"] for c in changes.values())
    return (
        f"{summary['vulnerabilities']} vulnerabilities ({summary['distinct_ids']} distinct; "
        f"{severities}), {summary['misconfigurations']} misconfigurations, "
        f"{summary['secrets']} secrets; {new} new, {fixed} fixed since the last scan"
    )
