"""The security policy: strict YAML, the verdict table per group, and the findings of an image
from real recorded Trivy reports on SQLite and PostgreSQL; `timbel scan gate`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.security.findings import ALPINE_DIGEST, CLEAN, T1, VULNERABLE, store
from timbel_dagster.cli.app import main
from timbel_dagster.security.policy import (
    default_policy,
    evaluate_gate,
    image_findings,
    load_policy,
    parse_policy,
)
from timbel_dagster.security.scan_import import record_scan_failure
from timbel_dagster.warehouse.engine import get_engine

IMAGE = "registry.example.com/shop/api:1.4.2"
NOW = T1 + dt.timedelta(days=1)


def finding(ident: str, severity: str, fixed: str | None = "2.0", age_days: int = 1) -> dict:
    return {
        "vulnerability_id": ident,
        "pkg_name": "pkg",
        "installed_version": "1.0",
        "fixed_version": fixed,
        "severity": severity,
        "first_seen": NOW - dt.timedelta(days=age_days),
    }


# --- the YAML -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("group: {}", "(top level): unknown key 'group'; keys are groups"),
        ("groups: {qa: {}}", "groups: unknown key 'qa'; keys are dev, staging, prod"),
        ("groups: {prod: {blok: [HIGH]}}", "groups.prod: unknown key 'blok'"),
        ("groups: {prod: {block: [CRITICALL]}}",
         "groups.prod.block[0]: unknown severity 'CRITICALL'; severities are CRITICAL, HIGH"),
        ("groups: {prod: {warn: HIGH}}", "groups.prod.warn: expected a list of severities"),
        ("groups: {prod: {require_scan: 'always'}}",
         "groups.prod.require_scan: expected true or false, got 'always'"),
        ("groups: {prod: {max_age_days: 0}}", "groups.prod.max_age_days: expected a whole number"),
        ("groups: {prod: {ignore: [{id: CVE-1}]}}", "groups.prod.ignore[0]: missing 'reason'"),
        ("groups: {prod: {ignore: [{id: CVE-1, reason: x, until: 2027-01-01}]}}",
         "groups.prod.ignore[0]: unknown key 'until'"),
        ("groups: {prod: {ignore: [{id: CVE-1, reason: x, expires: soon}]}}",
         "groups.prod.ignore[0].expires: expected a date like 2027-01-31, got 'soon'"),
        ("groups: {prod: {ignore: [{id: CVE-1, reason: ' '}]}}",
         "groups.prod.ignore[0].reason: expected a non-empty string"),
        ("groups: {staging: {block: [HIGH], warn: [HIGH]}}",
         "groups.staging: HIGH is in both block and warn"),
        ("[1, 2]", "(top level): expected a mapping, got list"),
    ],
)  # fmt: skip
def test_a_bad_policy_file_names_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "security.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_policy(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_an_unreadable_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TIMBEL_SECURITY_POLICY_FILE: cannot read"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups: {prod: [\n")
    with pytest.raises(ValueError, match=f"{broken}: not valid YAML"):
        load_policy(broken)


def test_a_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "security.yaml"
    path.write_text(
        "groups:\n  prod:\n    block: [critical, HIGH]\n    warn: []\n    require_scan: true\n"
        "    ignore:\n      - {id: CVE-2019-14697, reason: not reachable, expires: 2027-01-31}\n"
    )
    policy = load_policy(path)
    prod = policy.group("prod")
    assert (prod.block, prod.warn, prod.require_fix_available, prod.require_scan) == (
        ("CRITICAL", "HIGH"), (), True, True,
    )  # fmt: skip
    assert [(i.id, i.expires) for i in prod.ignore] == [("CVE-2019-14697", dt.date(2027, 1, 31))]
    assert policy.group("staging") == default_policy().group("staging")
    assert policy.source == str(path)
    assert load_policy(None) == default_policy()
    with pytest.raises(ValueError, match="unknown environment group 'qa'"):
        policy.group("qa")


# --- the verdict ----------------------------------------------------------------------------
GATES = [
    # group, policy, findings, allowed, blocking ids, warning ids
    ("prod", None, [finding("C1", "CRITICAL")], False, ["C1"], []),
    ("prod", None, [finding("C1", "CRITICAL", fixed=None)], True, [], ["C1"]),
    ("prod", None, [finding("H1", "HIGH"), finding("M1", "MEDIUM")], True, [], ["H1"]),
    ("staging", None, [finding("C1", "CRITICAL")], True, [], ["C1"]),
    ("dev", None, [finding("C1", "CRITICAL")], True, [], []),
    ("prod", {"prod": {"block": ["CRITICAL", "HIGH"]}},
     [finding("H1", "HIGH"), finding("H2", "HIGH", fixed=None)], False, ["H1"], ["H2"]),
    ("prod", {"prod": {"require_fix_available": False}},
     [finding("C1", "CRITICAL", fixed=None)], False, ["C1"], []),
    ("staging", {"staging": {"max_age_days": 30}},
     [finding("C1", "CRITICAL", age_days=31), finding("C2", "CRITICAL", age_days=29)],
     False, ["C1"], ["C2"]),
    ("staging", {"staging": {"max_age_days": 30}},
     [finding("C1", "CRITICAL", fixed=None, age_days=90)], True, [], ["C1"]),
    ("prod", {"prod": {"ignore": [{"id": "C1", "reason": "not reachable"}]}},
     [finding("C1", "CRITICAL")], True, [], []),
    ("prod", {"prod": {"ignore": [{"id": "C1", "reason": "r", "expires": "2026-11-03"}]}},
     [finding("C1", "CRITICAL")], True, [], []),  # NOW's day: still ignored
    ("prod", {"prod": {"ignore": [{"id": "C1", "reason": "r", "expires": "2026-11-02"}]}},
     [finding("C1", "CRITICAL")], False, ["C1"], []),
    ("prod", None, [], True, [], []),
]  # fmt: skip


@pytest.mark.parametrize(("group", "groups", "findings", "allowed", "blocks", "warns"), GATES)
def test_gate_table(
    group: str, groups: Any, findings: list, allowed: bool, blocks: list, warns: list
) -> None:
    policy = parse_policy({"groups": groups}) if groups else default_policy()
    result = evaluate_gate(findings, group, policy, now=NOW, image=IMAGE)
    assert result.allowed is allowed
    assert [f["vulnerability_id"] for f in result.blocking] == blocks
    assert [f["vulnerability_id"] for f in result.warnings] == warns
    assert result.summary.startswith(f"{group}: {'allowed' if allowed else 'blocked by'}")


def test_an_expired_ignore_is_noted_and_a_blocking_finding_named() -> None:
    policy = parse_policy(
        {"groups": {"prod": {"ignore": [{"id": "C1", "reason": "r", "expires": "2026-10-01"}]}}}
    )
    result = evaluate_gate([finding("C1", "CRITICAL")], "prod", policy, now=NOW, image=IMAGE)
    assert result.notes == ["the ignore entry of C1 expired on 2026-10-01; it counts again"]
    assert result.refusal() == (
        f"the prod security policy blocks image {IMAGE}: C1 pkg 1.0 CRITICAL (fixed in 2.0)"
    )
    assert result.summary == "prod: blocked by 1 CRITICAL finding"


@pytest.mark.parametrize(("require_scan", "allowed"), [(False, True), (True, False)])
def test_an_image_never_scanned(require_scan: bool, allowed: bool) -> None:
    policy = parse_policy({"groups": {"prod": {"require_scan": require_scan}}})
    result = evaluate_gate(None, "prod", policy, image=IMAGE)
    assert (result.allowed, result.scanned) == (allowed, False)
    assert f"image {IMAGE} was never scanned" in result.summary


def test_require_scan_is_built_in_for_prod_only() -> None:
    policy = default_policy()
    assert [policy.group(g).require_scan for g in ("dev", "staging", "prod")] == [
        False, False, True,
    ]  # fmt: skip
    assert evaluate_gate(None, "prod", policy, image=IMAGE).summary == (
        f"prod: blocked: image {IMAGE} was never scanned, and prod requires a scan"
    )
    assert evaluate_gate(None, "staging", policy, image=IMAGE).summary == (
        f"staging: allowed: image {IMAGE} was never scanned (not required for staging)"
    )


# --- the findings of an image ---------------------------------------------------------------
def test_findings_of_the_newest_scan_by_name_or_digest(warehouse_url: str) -> None:
    store(warehouse_url, VULNERABLE, IMAGE)
    engine = get_engine(warehouse_url)
    with engine.connect() as connection:
        by_name = image_findings(connection, IMAGE)
        by_digest = image_findings(connection, f"registry.example.com/shop/api@{ALPINE_DIGEST}")
        assert image_findings(connection, "registry.example.com/shop/api:9.9") is None
    assert by_name == by_digest
    assert by_name is not None
    assert [(f["vulnerability_id"], f["pkg_name"], f["severity"], f["fixed_version"])
            for f in by_name] == [
        ("CVE-2019-14697", "musl", "CRITICAL", "1.1.20-r5"),
        ("CVE-2019-14697", "musl-utils", "CRITICAL", "1.1.20-r5"),
    ]  # fmt: skip
    result = evaluate_gate(by_name, "prod", now=NOW, image=IMAGE)
    assert not result.allowed and len(result.blocking) == 2
    assert evaluate_gate(by_name, "staging", now=NOW).warnings[0]["reason"] == (
        "CRITICAL, fixed in 1.1.20-r5"
    )
    # A failed scan later changes nothing; a clean scan of the same image fixes both.
    with engine.begin() as connection:
        record_scan_failure(
            connection, source="trivy", artifact_name=IMAGE, error="boom", scanned_at=NOW
        )
        assert len(image_findings(connection, IMAGE) or []) == 2
    store(warehouse_url, CLEAN, IMAGE, at=NOW + dt.timedelta(hours=1))
    with engine.connect() as connection:
        assert image_findings(connection, IMAGE) == []
        assert evaluate_gate(image_findings(connection, IMAGE), "prod").allowed


def test_an_older_report_imported_late_does_not_reopen_the_gate(warehouse_url: str) -> None:
    store(warehouse_url, VULNERABLE, IMAGE, at=T1)
    store(warehouse_url, CLEAN, IMAGE, at=T1 + dt.timedelta(days=2))
    store(warehouse_url, VULNERABLE, IMAGE, at=T1 + dt.timedelta(days=1))  # out of order
    with get_engine(warehouse_url).connect() as connection:
        assert image_findings(connection, IMAGE) == []


def test_only_failed_scans_count_as_never_scanned(warehouse_url: str) -> None:
    with get_engine(warehouse_url).begin() as connection:
        record_scan_failure(connection, source="trivy", artifact_name=IMAGE, error="timeout")
        assert image_findings(connection, IMAGE) is None


# --- timbel scan gate -----------------------------------------------------------------------
@pytest.fixture
def env(warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "minji.kim")
    return warehouse_url


def test_scan_gate_cli(env: str, tmp_path: Path) -> None:
    store(env, VULNERABLE, IMAGE)
    blocked = CliRunner().invoke(main, ["scan", "gate", IMAGE, "--group", "prod", "--json"])
    assert blocked.exit_code == 1, blocked.output
    verdict = json.loads(blocked.stdout)
    assert (verdict["allowed"], verdict["group"], len(verdict["blocking"])) == (False, "prod", 2)
    assert verdict["blocking"][0]["first_seen"].startswith("2026-11-02T09:00:00")
    staging = CliRunner().invoke(main, ["scan", "gate", IMAGE, "--group", "staging"])
    assert staging.exit_code == 0, staging.output
    assert staging.stdout.startswith("staging: allowed; 2 warnings\n")
    assert [
        "warns", "CVE-2019-14697", "musl", "1.1.20-r4", "CRITICAL,", "fixed", "in", "1.1.20-r5",
    ] in [line.split() for line in staging.stdout.splitlines()]  # fmt: skip
    policy = tmp_path / "policy.yaml"
    policy.write_text("groups:\n  prod:\n    blok: [HIGH]\n")
    bad = CliRunner().invoke(main, ["scan", "gate", IMAGE, "--group", "prod", "--policy", policy])
    assert bad.exit_code == 2
    assert f"timbel: error: {policy}: groups.prod: unknown key 'blok'" in bad.stderr
    unknown = CliRunner().invoke(main, ["scan", "gate", IMAGE, "--group", "qa"])
    assert unknown.exit_code == 2 and "unknown environment group 'qa'" in unknown.stderr
