"""`import_report` on SQLite and PostgreSQL: counts, de-duplication, idempotent re-imports,
`fixed_at` set when a finding goes and cleared when it comes back, and nothing written for a
report that cannot be stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from timbel_dagster.records.trivy import ScanReport
from timbel_dagster.resources.trivy_report import load_report, parse_report
from timbel_dagster.security.scan_import import import_report, record_scan_failure
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.security import (
    MisconfigurationFinding,
    ScanResult,
    SecretFinding,
    VulnerabilityFinding,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trivy"
T1 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
T2, T3 = T1 + dt.timedelta(days=1), T1 + dt.timedelta(days=2)
TABLES = (ScanResult, VulnerabilityFinding, MisconfigurationFinding, SecretFinding)


def report(name: str, change: Any = None) -> ScanReport:
    data = json.loads((FIXTURES / name).read_text())
    if change:
        change(data)
    return parse_report(json.dumps(data), name)


def without_vulnerabilities(*pkgs: str) -> Any:
    def change(data: dict) -> None:
        for result in data["Results"]:
            result["Vulnerabilities"] = [
                v for v in result["Vulnerabilities"] if v["PkgName"] not in pkgs
            ]

    return change


def store(url: str, scan: ScanReport, at: dt.datetime | None = None) -> dict[str, Any]:
    with get_engine(url).begin() as connection:
        return import_report(connection, scan, source="trivy", scanned_at=at)


def counts(url: str) -> dict[str, int]:
    with get_engine(url).connect() as connection:
        return {
            model.__tablename__: connection.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            for model in TABLES
        }


def findings(url: str, model: Any = VulnerabilityFinding) -> dict[tuple, dict]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(model.__table__)).mappings().all()
    key = "pkg_name" if model is VulnerabilityFinding else "target"
    return {(r[key], r.get("vulnerability_id") or r.get("rule_id") or r.get("check_id")): dict(r)
            for r in rows}  # fmt: skip


def test_counts_and_rows(warehouse_url: str) -> None:
    scan = report("alpine-310-registry.json")
    summary = store(warehouse_url, scan)
    assert {k: summary[k] for k in ("results", "vulnerabilities", "by_severity", "distinct_ids",
                                    "misconfigurations", "secrets")} == {
        "results": 1,
        "vulnerabilities": 4,
        "by_severity": {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 4, "LOW": 0, "UNKNOWN": 0},
        "distinct_ids": 2,
        "misconfigurations": 0,
        "secrets": 0,
    }  # fmt: skip
    assert summary["changes"]["vulnerabilities"] == {"new": 4, "reopened": 0, "fixed": 0,
                                                     "written": 4}  # fmt: skip
    assert counts(warehouse_url) == {
        "scan_results": 1,
        "vulnerability_findings": 4,
        "misconfiguration_findings": 0,
        "secret_findings": 0,
    }
    with get_engine(warehouse_url).connect() as connection:
        row = connection.execute(select(ScanResult.__table__)).mappings().one()
    assert (row["artifact_name"], row["artifact_digest"], row["artifact_type"]) == (
        "alpine:3.10",
        scan.artifact_digest,
        "container_image",
    )
    assert (row["n_medium"], row["n_critical"], row["n_results"], row["status"]) == (
        4,
        0,
        1,
        "findings",
    )
    assert row["scanned_at"] == dt.datetime(2021, 8, 25, 12, 20, 30, tzinfo=dt.UTC)  # CreatedAt
    assert str(row["id"]) == summary["scan_id"]
    stored = findings(warehouse_url)[("libssl1.1", "CVE-2019-1551")]
    assert stored["fixed_version"] == "1.1.1d-r2" and stored["cvss_score"] == 5.3
    assert stored["first_seen"] == stored["last_seen"] == row["scanned_at"]
    assert stored["fixed_at"] is None and stored["last_scan_id"] == row["id"]
    assert stored["artifact_key"] == scan.artifact_digest

    repository = store(warehouse_url, load_report(FIXTURES / "test-repo.json"))
    assert repository["artifact_key"] == "https://github.com/knqyf263/trivy-ci-test"
    assert repository["by_severity"]["HIGH"] == 1 and repository["results"] == 2


def test_duplicates_collapse_per_artifact_and_artifacts_stay_apart(warehouse_url: str) -> None:
    def duplicated(data: dict) -> None:
        vulnerabilities = data["Results"][0]["Vulnerabilities"]
        vulnerabilities.append(dict(vulnerabilities[0]))

    first = store(warehouse_url, report("alpine-39-high-critical.json", duplicated), T1)
    assert (first["vulnerabilities"], first["distinct_ids"]) == (3, 1)
    assert counts(warehouse_url)["vulnerability_findings"] == 2
    other = report("alpine-39-high-critical.json").with_artifact_name("other")
    other = dataclasses.replace(other, artifact_digest="sha256:" + "0" * 64)
    store(warehouse_url, other, T1)
    assert counts(warehouse_url)["vulnerability_findings"] == 4


def test_reimport_writes_nothing(warehouse_url: str) -> None:
    scan = report("ubuntu-1804.json")
    store(warehouse_url, scan)
    before = findings(warehouse_url)
    again = store(warehouse_url, scan)
    assert {table: c["written"] for table, c in again["changes"].items()} == {
        "vulnerabilities": 0,
        "misconfigurations": 0,
        "secrets": 0,
    }
    assert counts(warehouse_url)["scan_results"] == 1
    assert findings(warehouse_url) == before  # updated_at included


def test_fixed_when_gone_cleared_when_back(warehouse_url: str) -> None:
    store(warehouse_url, report("alpine-310-registry.json"), T1)
    gone = store(warehouse_url, report("alpine-310-registry.json",
                                       without_vulnerabilities("libssl1.1")), T2)  # fmt: skip
    assert gone["changes"]["vulnerabilities"]["fixed"] == 2
    rows = findings(warehouse_url)
    assert {k[0]: r["fixed_at"] for k, r in rows.items()} == {"libcrypto1.1": None, "libssl1.1": T2}
    assert {r["last_seen"] for k, r in rows.items() if k[0] == "libssl1.1"} == {T1}
    assert {r["last_seen"] for k, r in rows.items() if k[0] == "libcrypto1.1"} == {T2}

    back = store(warehouse_url, report("alpine-310-registry.json"), T3)
    assert back["changes"]["vulnerabilities"] == {"new": 0, "reopened": 2, "fixed": 0,
                                                  "written": 4}  # fmt: skip
    rows = findings(warehouse_url)
    assert {r["fixed_at"] for r in rows.values()} == {None}
    assert {(r["first_seen"], r["last_seen"]) for r in rows.values()} == {(T1, T3)}
    with get_engine(warehouse_url).connect() as connection:
        scans = connection.execute(select(ScanResult.scanned_at, ScanResult.id)).all()
    assert sorted(at for at, _ in scans) == [T1, T2, T3]
    assert {r["last_scan_id"] for r in rows.values()} == {max(scans)[1]}


def test_an_older_report_imported_late_only_moves_first_seen(warehouse_url: str) -> None:
    store(warehouse_url, report("alpine-310-registry.json"), T2)
    store(warehouse_url, report("alpine-310-registry.json", without_vulnerabilities("libssl1.1")),
          T3)  # fmt: skip
    before = findings(warehouse_url)
    older = store(warehouse_url, report("alpine-310-registry.json",
                                        without_vulnerabilities("libcrypto1.1")), T1)  # fmt: skip
    assert older["changes"]["vulnerabilities"]["fixed"] == 0
    after = findings(warehouse_url)
    for key, row in after.items():
        expected_first = T1 if key[0] == "libssl1.1" else T2
        assert row["first_seen"] == expected_first
        assert (row["last_seen"], row["fixed_at"], row["last_scan_id"]) == (
            before[key]["last_seen"],
            before[key]["fixed_at"],
            before[key]["last_scan_id"],
        )


def test_misconfigurations_and_secrets_are_tracked_too(warehouse_url: str) -> None:
    store(warehouse_url, report("dockerfile.json"), T1)
    secrets = report("secrets.json").with_artifact_name("testdata/fixtures/repo/dockerfile")
    summary = store(warehouse_url, secrets, T2)
    assert (summary["misconfigurations"], summary["secrets"], summary["status"]) == (
        0,
        2,
        "findings",
    )
    assert summary["changes"]["misconfigurations"]["fixed"] == 1
    [misconf] = findings(warehouse_url, MisconfigurationFinding).values()
    assert (misconf["check_id"], misconf["severity"], misconf["fixed_at"]) == (
        "DS-0002",
        "HIGH",
        T2,
    )
    stored = findings(warehouse_url, SecretFinding)
    assert set(stored) == {("deploy.sh", "aws-access-key-id"), ("deploy.sh", "mysecret")}
    assert {r["first_seen"] for r in stored.values()} == {T2}


def test_a_clean_scan_fixes_everything(warehouse_url: str) -> None:
    store(warehouse_url, report("alpine-39-high-critical.json"), T1)
    clean = store(warehouse_url, report("alpine-39-skip.json"), T2)  # same ImageID, no Results
    assert clean["status"] == "clean" and clean["changes"]["vulnerabilities"]["fixed"] == 2


def _too_long(scan: ScanReport) -> ScanReport:
    """The report with its last vulnerability's installed version too long to store."""
    last = scan.results[0].vulnerabilities[-1]
    broken = dataclasses.replace(last, installed_version="9" * 300)
    result = dataclasses.replace(
        scan.results[0], vulnerabilities=(*scan.results[0].vulnerabilities[:-1], broken)
    )
    return dataclasses.replace(scan, results=(result,))


def _bad_severity(scan: ScanReport) -> ScanReport:
    wrong = dataclasses.replace(scan.results[0].vulnerabilities[-1], severity="SEVERE")
    result = dataclasses.replace(
        scan.results[0], vulnerabilities=(*scan.results[0].vulnerabilities[:-1], wrong)
    )
    return dataclasses.replace(scan, results=(result,))


def test_a_report_that_cannot_be_stored_writes_nothing(warehouse_url: str) -> None:
    store(warehouse_url, report("alpine-39-high-critical.json"), T1)
    before = counts(warehouse_url)
    cases = [
        (_too_long, r"vulnerability_findings: installed_version of .* CVE-2019-5094 .* is 300 "
         r"characters long, more than the 256"),
        (_bad_severity, r"severity of .* is 'SEVERE'"),
        (lambda scan: scan.with_artifact_name(""), "names no artifact"),
    ]  # fmt: skip
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            store(warehouse_url, change(report("ubuntu-1804.json")), T2)
        assert counts(warehouse_url) == before
    with pytest.raises(ValueError, match="no time zone"):
        store(warehouse_url, report("ubuntu-1804.json"), dt.datetime(2026, 11, 2))
    assert counts(warehouse_url) == before


def test_a_failed_scan_is_recorded_without_touching_findings(warehouse_url: str) -> None:
    store(warehouse_url, report("alpine-39-high-critical.json"), T1)
    ref = "registry.example/shop/api@sha256:" + "7" * 64
    with get_engine(warehouse_url).begin() as connection:
        record_scan_failure(connection, source="trivy", artifact_name=ref, error="timed out",
                            scanned_at=T2)  # fmt: skip
    with get_engine(warehouse_url).connect() as connection:
        row = (
            connection.execute(select(ScanResult.__table__).where(ScanResult.status == "failed"))
            .mappings()
            .one()
        )
    assert (row["artifact_key"], row["error"], row["n_critical"]) == ("sha256:" + "7" * 64,
                                                                     "timed out", 0)  # fmt: skip
    assert {r["fixed_at"] for r in findings(warehouse_url).values()} == {None}


def test_a_late_import_between_found_and_fixed_keeps_it_fixed(warehouse_url: str) -> None:
    """Seen at T1, fixed by the scan at T3, then the T2 scan (still vulnerable) arrives: the
    finding was last seen at T2 and is still fixed at T3."""
    store(warehouse_url, report("alpine-310-registry.json"), T1)
    clean = without_vulnerabilities("libssl1.1")
    store(warehouse_url, report("alpine-310-registry.json", clean), T3)
    late = store(warehouse_url, report("alpine-310-registry.json"), T2)
    assert late["changes"]["vulnerabilities"]["reopened"] == 0
    for key, row in findings(warehouse_url).items():
        if key[0] == "libssl1.1":
            assert (row["last_seen"], row["fixed_at"]) == (T2, T3)
        else:
            assert (row["last_seen"], row["fixed_at"]) == (T3, None)
