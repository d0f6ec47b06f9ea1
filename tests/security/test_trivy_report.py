"""Reading Trivy JSON reports: recorded real reports (tests/fixtures/trivy), the keys Trivy
leaves out, the pre-0.20 array format, and malformed input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from timbel_dagster.resources.trivy_report import load_report, parse_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trivy"
ALPINE_310_DIGEST = "sha256:b1c5a500182b21d0bfa5a584a8526b56d8be316f89e87d951be04abed2446e60"
ALPINE_39_IMAGE_ID = "sha256:055936d3920576da37aa9bc460d70c5f212028bda1c08c0879aedf03d7a66ea1"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    ("name", "artifact_type", "digest", "results", "vulnerabilities", "distinct", "misconfs",
     "secrets"),
    [
        ("alpine-310-registry.json", "container_image", ALPINE_310_DIGEST, 1, 4, 2, 0, 0),
        ("alpine-39-high-critical.json", "container_image", ALPINE_39_IMAGE_ID, 1, 2, 1, 0, 0),
        ("alpine-39-skip.json", "container_image", ALPINE_39_IMAGE_ID, 0, 0, 0, 0, 0),
        ("ubuntu-1804.json", "container_image", None, 1, 5, 2, 0, 0),
        ("test-repo.json", "repository", None, 2, 2, 2, 0, 0),
        ("dockerfile.json", "repository", None, 1, 0, 0, 1, 0),
        ("secrets.json", "repository", None, 1, 0, 0, 0, 2),
    ],
)  # fmt: skip
def test_recorded_reports(
    name: str,
    artifact_type: str,
    digest: str | None,
    results: int,
    vulnerabilities: int,
    distinct: int,
    misconfs: int,
    secrets: int,
) -> None:
    report = load_report(FIXTURES / name)
    assert report.artifact_type == artifact_type
    if digest is not None:
        assert report.artifact_digest == digest
    if artifact_type != "container_image":
        assert report.artifact_digest is None
        assert report.artifact_key == report.artifact_name
    assert len(report.results) == results
    assert len(report.vulnerabilities) == vulnerabilities
    assert len({v.vulnerability_id for v in report.vulnerabilities}) == distinct
    assert len(report.misconfigurations) == misconfs
    assert len(report.secrets) == secrets
    assert report.created_at is not None and report.created_at.year == 2021


def test_vulnerability_fields_of_a_registry_image() -> None:
    report = load_report(FIXTURES / "alpine-310-registry.json")
    assert report.artifact_name == "alpine:3.10"
    assert report.repo_digests == (f"alpine@{ALPINE_310_DIGEST}",)
    assert report.image_id != report.artifact_digest  # the manifest digest, not the config's
    first = report.vulnerabilities[0]
    assert (first.target, first.vulnerability_id, first.pkg_name, first.installed_version) == (
        "alpine:3.10 (alpine 3.10.2)",
        "CVE-2019-1549",
        "libcrypto1.1",
        "1.1.1c-r0",
    )
    assert first.fixed_version == "1.1.1d-r0" and first.severity == "MEDIUM"
    # SeveritySource is nvd: NVD's v3 score, not Red Hat's 4.8.
    assert (first.cvss_score, first.cvss_vector) == (
        5.3,
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N",
    )
    assert report.scanner_version is None  # this older report has no `Trivy` block


def test_missing_fixed_version_and_title_are_none() -> None:
    ubuntu = load_report(FIXTURES / "ubuntu-1804.json")
    [bash] = [v for v in ubuntu.vulnerabilities if v.pkg_name == "bash"]
    assert (bash.fixed_version, bash.status, bash.severity) == (None, "affected", "LOW")
    alpine = load_report(FIXTURES / "alpine-39-high-critical.json")
    assert {v.title for v in alpine.vulnerabilities} == {None}
    assert alpine.scanner_version == "dev"


def test_result_without_vulnerabilities_and_report_without_results() -> None:
    repo = load_report(FIXTURES / "test-repo.json")
    assert [(r.target, len(r.vulnerabilities)) for r in repo.results] == [
        ("Cargo.lock", 2),
        ("Pipfile.lock", 0),
    ]
    assert load_report(FIXTURES / "alpine-39-skip.json").results == ()


def test_misconfigurations_and_secrets() -> None:
    [misconf] = load_report(FIXTURES / "dockerfile.json").misconfigurations
    assert (misconf.target, misconf.check_id, misconf.severity, misconf.failed) == (
        "Dockerfile",
        "DS-0002",
        "HIGH",
        True,
    )
    assert misconf.resource is None and misconf.start_line is None
    secrets = load_report(FIXTURES / "secrets.json").secrets
    assert [(s.rule_id, s.severity, s.start_line) for s in secrets] == [
        ("aws-access-key-id", "CRITICAL", 3),
        ("mysecret", "HIGH", 7),
    ]
    assert "****" in (secrets[0].match or "")


def test_a_digest_in_the_scanned_reference_wins() -> None:
    data = fixture("alpine-310-registry.json")
    data["ArtifactName"] = "registry.example/shop/api@sha256:" + "ab" * 32
    report = parse_report(json.dumps(data))
    assert report.artifact_digest == "sha256:" + "ab" * 32
    renamed = report.with_artifact_name("shop-api")
    assert renamed.artifact_name == "shop-api" and renamed.artifact_key == report.artifact_key


def test_the_old_array_format_is_refused_with_advice() -> None:
    path = FIXTURES / "legacy-array-distroless-base.json"
    with pytest.raises(ValueError) as error:
        load_report(path)
    message = str(error.value)
    assert message.startswith(f"{path}: $: a bare JSON array of results")
    assert "before 0.20" in message and "pre-schema-2" in message and "re-run" in message


def _edit(change: Any) -> str:
    data = copy.deepcopy(fixture("alpine-310-registry.json"))
    change(data)
    return json.dumps(data)


def _vuln(data: dict[str, Any]) -> dict[str, Any]:
    return data["Results"][0]["Vulnerabilities"][2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "scan.json: is empty"),
        ("Total: 3 (HIGH: 3)", "scan.json: not JSON (Expecting value at line 1 column 1)"),
        ('{"SchemaVersion": 2, ', "scan.json: not JSON ("),
        ('"report"', "scan.json: $: expected an object, got string"),
        ('{"ArtifactName": "x"}', "scan.json: $.SchemaVersion: missing; expected 2"),
        ('{"SchemaVersion": 1}', "scan.json: $.SchemaVersion: expected 2, got 1"),
        ('{"SchemaVersion": "2"}', "scan.json: $.SchemaVersion: expected 2, got '2'"),
        ('{"SchemaVersion": 2, "Results": {}}', "scan.json: $.Results: expected an array, got "
         "object"),
        ('{"SchemaVersion": 2, "Results": [{"Class": "os-pkgs"}]}',
         "scan.json: $.Results[0].Target: missing"),
        ('{"SchemaVersion": 2, "Metadata": {"RepoDigests": [1]}}',
         "scan.json: $.Metadata.RepoDigests[0]: not a string"),
        ('{"SchemaVersion": 2, "CreatedAt": "yesterday"}',
         "scan.json: $.CreatedAt: not an RFC 3339 time: 'yesterday'"),
        (_edit(lambda d: _vuln(d).pop("VulnerabilityID")),
         "scan.json: $.Results[0].Vulnerabilities[2].VulnerabilityID: missing"),
        (_edit(lambda d: _vuln(d).update(Severity="SEVERE")),
         "scan.json: $.Results[0].Vulnerabilities[2].Severity: expected one of CRITICAL, HIGH, "
         "MEDIUM, LOW, UNKNOWN, got 'SEVERE'"),
        (_edit(lambda d: _vuln(d).update(InstalledVersion=3)),
         "scan.json: $.Results[0].Vulnerabilities[2].InstalledVersion: expected a string, got "
         "number"),
        (_edit(lambda d: _vuln(d)["CVSS"]["nvd"].update(V3Score="5.3")),
         "scan.json: $.Results[0].Vulnerabilities[2].CVSS.nvd.V3Score: expected a number, got "
         "string"),
        (_edit(lambda d: d["Results"][0].update(Vulnerabilities={"a": 1})),
         "scan.json: $.Results[0].Vulnerabilities: expected an array, got object"),
    ],
)  # fmt: skip
def test_malformed_reports_name_the_file_and_path(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_report(text, "scan.json")
    assert str(error.value).startswith(expected), str(error.value)


def test_bytes_and_missing_severity() -> None:
    data = fixture("alpine-310-registry.json")
    del _vuln(data)["Severity"]
    report = parse_report(json.dumps(data).encode())
    assert report.vulnerabilities[2].severity == "UNKNOWN"


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nothing\.json: cannot read the report"):
        load_report(tmp_path / "nothing.json")
