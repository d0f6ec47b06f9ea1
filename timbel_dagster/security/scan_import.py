"""Storing a Trivy report in the warehouse: one scan row and the findings, kept across scans.

Everything happens on the caller's connection, inside its transaction, with set-based
statements: per finding table one SELECT of the artifact's stored findings, one bulk upsert
of the new and changed ones, one UPDATE (per 5,000) of those seen again unchanged, and one
UPDATE that marks the findings this scan no longer reports as fixed. Re-importing a
report changes nothing; a report imported out of order (older than what is stored) never
moves `last_seen` back, never clears a later `fixed_at`, and does not overwrite what a newer
scan said about a finding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.trivy import ScanReport
from timbel_dagster.resources.trivy_report import reference_digest
from timbel_dagster.security import finding_rows
from timbel_dagster.security.finding_rows import SCAN_KEY, SCANNER
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    import uuid

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

# Ids per `UPDATE ... WHERE id IN (...)`: well under SQLite's 32,766 bind parameters.
_IDS_PER_UPDATE = 5_000


def _tables() -> list[tuple[str, Table, tuple[str, ...], Callable[..., list[dict[str, Any]]]]]:
    # lazy: warehouse.schema.security loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.security import (
        MisconfigurationFinding,
        SecretFinding,
        VulnerabilityFinding,
    )

    return [
        (
            "vulnerabilities",
            VulnerabilityFinding.__table__,
            finding_rows.VULNERABILITY_KEY,
            finding_rows.vulnerability_rows,
        ),
        (
            "misconfigurations",
            MisconfigurationFinding.__table__,
            finding_rows.MISCONFIGURATION_KEY,
            finding_rows.misconfiguration_rows,
        ),
        ("secrets", SecretFinding.__table__, finding_rows.SECRET_KEY, finding_rows.secret_rows),
    ]  # type: ignore[list-item]


def _moment(report: ScanReport, scanned_at: dt.datetime | None) -> dt.datetime:
    moment = scanned_at or report.created_at or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError(f"scanned_at {moment.isoformat()} has no time zone; give UTC")
    return moment.astimezone(dt.UTC)


class _Plan:
    """What one finding table needs: rows to upsert (new findings, changed attributes, an
    older scan moving `first_seen` back) and ids whose only change is that this scan saw
    them (`last_seen`, `last_scan_id`, `fixed_at` cleared), set by one UPDATE."""

    def __init__(self) -> None:
        self.upsert: list[dict[str, Any]] = []
        self.seen_again: list[Any] = []
        self.new = 0
        self.reopened = 0


def _plan(
    rows: list[dict[str, Any]],
    stored: dict[tuple[Any, ...], dict[str, Any]],
    key: tuple[str, ...],
    moment: dt.datetime,
    scan_id: uuid.UUID,
    table: str,
) -> _Plan:
    plan = _Plan()
    seen = {"last_seen": moment, "fixed_at": None, "last_scan_id": scan_id}
    for natural, row in {tuple(row[k] for k in key): row for row in rows}.items():
        old = stored.get(natural)
        if old is None:
            plan.new += 1
            plan.upsert.append(
                row | {"id": stable_id(table, *natural), "first_seen": moment} | seen
            )
        elif moment >= old["last_seen"]:
            # A scan older than the one that found it fixed (imported late) leaves it fixed.
            still_fixed = old["fixed_at"] is not None and old["fixed_at"] > moment
            plan.reopened += old["fixed_at"] is not None and not still_fixed
            if still_fixed or any(old[column] != value for column, value in row.items()):
                keep = {"fixed_at": old["fixed_at"]} if still_fixed else {}
                plan.upsert.append(
                    row | {"id": old["id"], "first_seen": old["first_seen"]} | seen | keep
                )
            elif any(old[column] != value for column, value in seen.items()):
                plan.seen_again.append(old["id"])
        elif moment < old["first_seen"]:
            # An older scan than the newest stored: it can only move first_seen back.
            plan.upsert.append(old | {"first_seen": moment})
    return plan


def _sync_findings(
    connection: Connection,
    table: Table,
    key: tuple[str, ...],
    rows: list[dict[str, Any]],
    artifact_key: str,
    moment: dt.datetime,
    scan_id: uuid.UUID,
) -> dict[str, int]:
    from sqlalchemy import select, update

    columns = [c for c in table.c if c.name not in ("created_at", "updated_at")]
    names = [c.name for c in columns]
    query = select(*columns).where(table.c.artifact_key == artifact_key)
    # Plain tuples zipped with the names: `.mappings()` costs more than the query here.
    found = (dict(zip(names, r, strict=True)) for r in connection.execute(query).tuples())
    stored = {tuple(r[k] for k in key): r for r in found}
    plan = _plan(rows, stored, key, moment, scan_id, table.name)
    written = bulk_upsert(connection, table, plan.upsert, key).written
    now = dt.datetime.now(dt.UTC)
    for start in range(0, len(plan.seen_again), _IDS_PER_UPDATE):
        written += connection.execute(
            update(table)
            .where(table.c.id.in_(plan.seen_again[start : start + _IDS_PER_UPDATE]))
            .values(last_seen=moment, last_scan_id=scan_id, fixed_at=None, updated_at=now)
        ).rowcount
    fixed = connection.execute(
        update(table)
        .where(
            table.c.artifact_key == artifact_key,
            table.c.fixed_at.is_(None),
            table.c.last_seen < moment,
        )
        .values(fixed_at=moment, updated_at=now)
    ).rowcount
    return {"new": plan.new, "reopened": plan.reopened, "fixed": fixed, "written": written}


def import_report(
    connection: Connection,
    report: ScanReport,
    *,
    source: str,
    scanned_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Store one scan of `report`'s artifact and its findings, inside the caller's transaction.

    A finding of the same artifact (`artifact_key`: its digest, else its name) that an
    earlier scan reported and this one does not gets `fixed_at` = this scan's time; one that
    comes back has `fixed_at` cleared.

    Args:
        connection: an open connection inside a transaction (commit all or nothing).
        report: a parsed Trivy report (`trivy_report.parse_report`).
        source: where the report came from (`trivy`, or `sample` for the sample data).
        scanned_at: the scan's time; by default the report's `CreatedAt`, else now.

    Returns:
        The report's counts (`results`, `vulnerabilities`, `by_severity`, `distinct_ids`,
        `misconfigurations`, `secrets`) plus `scan_id`, `artifact`, `artifact_key`,
        `scanned_at`, `status` and, per finding table, what changed (`changes`).

    Raises:
        ValueError: the report names no artifact, or a value does not fit the warehouse;
            nothing is written.
    """
    # lazy: warehouse.schema.security loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.security import ScanResult

    if not report.artifact_name:
        raise ValueError(
            "the report names no artifact (no ArtifactName): give it one, for example with "
            "`timbel scan import --artifact NAME`"
        )
    moment = _moment(report, scanned_at)
    scan_id = stable_id("scan_results", source, SCANNER, report.artifact_key, moment.isoformat())
    scan = finding_rows.scan_row(report, source, scan_id, moment)
    finding_rows.check_rows(ScanResult.__table__, [scan], SCAN_KEY)
    planned = []
    for name, table, key, build in _tables():
        rows = build(report, source)
        finding_rows.check_rows(table, rows, key)
        planned.append((name, table, key, rows))
    bulk_upsert(connection, ScanResult.__table__, [scan], SCAN_KEY)
    changes = {
        name: _sync_findings(connection, table, key, rows, report.artifact_key, moment, scan_id)
        for name, table, key, rows in planned
    }
    return finding_rows.summary(report) | {
        "scan_id": str(scan_id),
        "artifact": report.artifact_name,
        "artifact_key": report.artifact_key,
        "scanned_at": moment.isoformat(),
        "status": scan["status"],
        "changes": changes,
    }


def record_scan_failure(
    connection: Connection,
    *,
    source: str,
    artifact_name: str,
    error: str,
    artifact_type: str = "container_image",
    scanned_at: dt.datetime | None = None,
) -> str:
    """Store a scan that produced no report (status `failed`, with the error); its findings
    stay as they were. Returns the scan's id."""
    # lazy: warehouse.schema.security loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.security import ScanResult

    moment = (scanned_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    digest = reference_digest(artifact_name) if artifact_type == "container_image" else None
    artifact_key = digest or artifact_name
    scan_id = stable_id("scan_results", source, SCANNER, artifact_key, moment.isoformat())
    row = {
        "id": scan_id,
        "source": source,
        "scanner": SCANNER,
        "scanner_version": None,
        "artifact_name": artifact_name[:512],
        "artifact_type": artifact_type,
        "artifact_digest": digest,
        "artifact_key": artifact_key[:512],
        "scanned_at": moment,
        "n_results": 0,
        "n_critical": 0,
        "n_high": 0,
        "n_medium": 0,
        "n_low": 0,
        "n_unknown": 0,
        "n_misconfigurations": 0,
        "n_secrets": 0,
        "status": "failed",
        "error": error,
    }
    bulk_upsert(connection, ScanResult.__table__, [row], SCAN_KEY)
    return str(scan_id)
