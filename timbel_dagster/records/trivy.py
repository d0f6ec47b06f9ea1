"""The frozen dataclasses a Trivy JSON report is read into (`resources/trivy_report.py`): the
Trivy client and the sample scanner return them; the security domain judges and stores them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

# Trivy's severities, worst first (trivy-db's types.SeverityNames, reversed).
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


@dataclass(frozen=True)
class Vulnerability:
    """One entry of a result's `Vulnerabilities`."""

    target: str
    vulnerability_id: str
    pkg_name: str
    pkg_id: str | None
    installed_version: str
    fixed_version: str | None  # absent while no fix exists
    severity: str
    status: str | None  # Trivy's `Status`: fixed, affected, will_not_fix, ...
    title: str | None
    primary_url: str | None
    cvss_score: float | None
    cvss_vector: str | None


@dataclass(frozen=True)
class Misconfiguration:
    """One entry of a result's `Misconfigurations` (failing, or passing with
    `--include-non-failures`)."""

    target: str
    check_id: str  # `ID` (DS-0002; AVD-DS-0002 in older Trivy) or, failing that, `AVDID`
    check_type: str | None
    title: str | None
    message: str | None
    severity: str
    resolution: str | None
    primary_url: str | None
    status: str | None  # FAIL, PASS or EXCEPTION
    resource: str | None  # CauseMetadata.Resource
    start_line: int | None
    end_line: int | None

    @property
    def failed(self) -> bool:
        return self.status in (None, "FAIL")


@dataclass(frozen=True)
class Secret:
    """One entry of a result's `Secrets`; Trivy masks the secret in `match` itself."""

    target: str
    rule_id: str
    category: str | None
    severity: str
    title: str | None
    start_line: int | None
    end_line: int | None
    match: str | None


@dataclass(frozen=True)
class Result:
    """One scanned target: an OS, a lock file, a config file, a file with secrets."""

    target: str
    result_class: str | None  # os-pkgs, lang-pkgs, config, secret, license, ...
    result_type: str | None  # alpine, cargo, dockerfile, ...
    vulnerabilities: tuple[Vulnerability, ...]
    misconfigurations: tuple[Misconfiguration, ...]
    secrets: tuple[Secret, ...]


@dataclass(frozen=True)
class ScanReport:
    """A whole report: the artifact and its results, with the findings flattened."""

    artifact_name: str
    artifact_type: str
    # Container images only: the digest of the reference scanned (`repo@sha256:...`), else
    # of its first RepoDigest, else the ImageID. None for filesystems, repositories, SBOMs.
    artifact_digest: str | None
    image_id: str | None
    repo_digests: tuple[str, ...]
    created_at: dt.datetime | None  # when Trivy made it (`CreatedAt`, Trivy 0.47 and later)
    scanner_version: str | None  # `Trivy.Version` (recent Trivy)
    results: tuple[Result, ...]

    @property
    def vulnerabilities(self) -> tuple[Vulnerability, ...]:
        return tuple(v for r in self.results for v in r.vulnerabilities)

    @property
    def misconfigurations(self) -> tuple[Misconfiguration, ...]:
        return tuple(m for r in self.results for m in r.misconfigurations)

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for r in self.results for s in r.secrets)

    @property
    def artifact_key(self) -> str:
        """What identifies the artifact across scans: its digest, else its name."""
        return self.artifact_digest or self.artifact_name

    def with_artifact_name(self, name: str) -> ScanReport:
        """The same report under another artifact name (a report of a saved tarball, say)."""
        return replace(self, artifact_name=name)
