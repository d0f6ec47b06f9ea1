"""Findings for the policy and follow-up tests: real recorded Trivy reports imported with
`scan_import.import_report`, under the image names the tests deploy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from timbel_dagster.resources.trivy_report import load_report
from timbel_dagster.security.scan_import import import_report
from timbel_dagster.warehouse.engine import get_engine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trivy"
T1 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
# alpine 3.9 with CVE-2019-14697 (CRITICAL, fixed in 1.1.20-r5) in musl and musl-utils; the
# `skip` report is the same image (same ImageID) scanned clean.
VULNERABLE = "alpine-39-high-critical.json"
CLEAN = "alpine-39-skip.json"
ALPINE_DIGEST = "sha256:055936d3920576da37aa9bc460d70c5f212028bda1c08c0879aedf03d7a66ea1"


def store(url: str, fixture: str, name: str | None = None, at: dt.datetime = T1) -> dict[str, Any]:
    """Import `fixture` (as artifact `name`) scanned at `at`; the import's summary."""
    report = load_report(FIXTURES / fixture)
    if name:
        report = report.with_artifact_name(name)
    with get_engine(url).begin() as connection:
        return import_report(connection, report, source="trivy", scanned_at=at)
