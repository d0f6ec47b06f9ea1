"""Trivy JSON reports (`--format json`, schema version 2) read into the frozen dataclasses
of `records.trivy`.

Trivy writes every field with `omitempty`: a clean target has no `Vulnerabilities`, a
skipped artifact no `Results`, an unfixed vulnerability no `FixedVersion`, and so on; all of
those are normal. What is refused, with a message naming the file and the JSON path: text
that is not JSON, the bare array of results Trivy wrote before 0.20 (no `SchemaVersion`),
another schema version, and values of the wrong type.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, NoReturn

from timbel_dagster.records.trivy import (
    SEVERITIES,
    Misconfiguration,
    Result,
    ScanReport,
    Secret,
    Vulnerability,
)

SCHEMA_VERSION = 2
# Which CVSS fields to read, best first: v3 is what most advisories score.
_CVSS_FIELDS = (("V3Score", "V3Vector"), ("V40Score", "V40Vector"), ("V2Score", "V2Vector"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class _Reader:
    """Typed access to a decoded report that names the file and JSON path on every error."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, path: str, message: str) -> NoReturn:
        raise ValueError(f"{self.name}: {path}: {message}")

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_kind(value)}")
        return value

    def text(self, parent: dict[str, Any], key: str, path: str, required: bool = False) -> Any:
        value = parent.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "missing")
            return None
        if not isinstance(value, str):
            self.fail(f"{path}.{key}", f"expected a string, got {_kind(value)}")
        if required and not value:
            self.fail(f"{path}.{key}", "is empty")
        return value

    def integer(self, parent: dict[str, Any], key: str, path: str) -> int | None:
        value = parent.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{path}.{key}", f"expected an integer, got {_kind(value)}")
        return value

    def array(self, parent: dict[str, Any], key: str, path: str) -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"{path}.{key}", f"expected an array, got {_kind(value)}")
        return value

    def severity(self, parent: dict[str, Any], path: str) -> str:
        value = self.text(parent, "Severity", path)
        if value is None:
            return "UNKNOWN"
        if value.upper() not in SEVERITIES:
            self.fail(f"{path}.Severity", f"expected one of {', '.join(SEVERITIES)}, got {value!r}")
        return value.upper()


def _cvss(reader: _Reader, item: dict[str, Any], path: str) -> tuple[float | None, str | None]:
    """The score of the severity's own source, else NVD's, else the first vendor's."""
    vendors = reader.obj(item.get("CVSS") or {}, f"{path}.CVSS")
    preferred = [item.get("SeveritySource"), "nvd", *sorted(vendors)]
    for vendor in dict.fromkeys(v for v in preferred if v in vendors):
        where = f"{path}.CVSS.{vendor}"
        entry = reader.obj(vendors[vendor], where)
        for score_key, vector_key in _CVSS_FIELDS:
            score = entry.get(score_key)
            if score is None:
                continue
            if isinstance(score, bool) or not isinstance(score, int | float):
                reader.fail(f"{where}.{score_key}", f"expected a number, got {_kind(score)}")
            return float(score), reader.text(entry, vector_key, where)
    return None, None


def _vulnerability(reader: _Reader, target: str, value: Any, path: str) -> Vulnerability:
    item = reader.obj(value, path)
    score, vector = _cvss(reader, item, path)
    return Vulnerability(
        target=target,
        vulnerability_id=reader.text(item, "VulnerabilityID", path, required=True),
        pkg_name=reader.text(item, "PkgName", path, required=True),
        pkg_id=reader.text(item, "PkgID", path),
        installed_version=reader.text(item, "InstalledVersion", path) or "",
        fixed_version=reader.text(item, "FixedVersion", path) or None,
        severity=reader.severity(item, path),
        status=reader.text(item, "Status", path),
        title=reader.text(item, "Title", path),
        primary_url=reader.text(item, "PrimaryURL", path),
        cvss_score=score,
        cvss_vector=vector,
    )


def _misconfiguration(reader: _Reader, target: str, value: Any, path: str) -> Misconfiguration:
    item = reader.obj(value, path)
    check_id = reader.text(item, "ID", path) or reader.text(item, "AVDID", path)
    if not check_id:
        reader.fail(f"{path}.ID", "missing")
    cause = reader.obj(item.get("CauseMetadata") or {}, f"{path}.CauseMetadata")
    where = f"{path}.CauseMetadata"
    return Misconfiguration(
        target=target,
        check_id=check_id,
        check_type=reader.text(item, "Type", path),
        title=reader.text(item, "Title", path),
        message=reader.text(item, "Message", path),
        severity=reader.severity(item, path),
        resolution=reader.text(item, "Resolution", path),
        primary_url=reader.text(item, "PrimaryURL", path),
        status=reader.text(item, "Status", path),
        resource=reader.text(cause, "Resource", where) or None,
        start_line=reader.integer(cause, "StartLine", where),
        end_line=reader.integer(cause, "EndLine", where),
    )


def _secret(reader: _Reader, target: str, value: Any, path: str) -> Secret:
    item = reader.obj(value, path)
    return Secret(
        target=target,
        rule_id=reader.text(item, "RuleID", path, required=True),
        category=reader.text(item, "Category", path),
        severity=reader.severity(item, path),
        title=reader.text(item, "Title", path),
        start_line=reader.integer(item, "StartLine", path),
        end_line=reader.integer(item, "EndLine", path),
        match=reader.text(item, "Match", path),
    )


def _result(reader: _Reader, value: Any, path: str) -> Result:
    item = reader.obj(value, path)
    target = reader.text(item, "Target", path, required=True)
    return Result(
        target=target,
        result_class=reader.text(item, "Class", path),
        result_type=reader.text(item, "Type", path),
        vulnerabilities=tuple(
            _vulnerability(reader, target, v, f"{path}.Vulnerabilities[{i}]")
            for i, v in enumerate(reader.array(item, "Vulnerabilities", path))
        ),
        misconfigurations=tuple(
            _misconfiguration(reader, target, m, f"{path}.Misconfigurations[{i}]")
            for i, m in enumerate(reader.array(item, "Misconfigurations", path))
        ),
        secrets=tuple(
            _secret(reader, target, s, f"{path}.Secrets[{i}]")
            for i, s in enumerate(reader.array(item, "Secrets", path))
        ),
    )


def reference_digest(reference: str) -> str | None:
    """The digest of an image reference `host/repo@sha256:...`, or None without one."""
    _, at, digest = reference.partition("@")
    return digest if at and ":" in digest else None


def _created_at(reader: _Reader, report: dict[str, Any]) -> dt.datetime | None:
    value = reader.text(report, "CreatedAt", "$")
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        reader.fail("$.CreatedAt", f"not an RFC 3339 time: {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _check_schema(reader: _Reader, decoded: Any) -> dict[str, Any]:
    if isinstance(decoded, list):
        reader.fail(
            "$",
            "a bare JSON array of results is the report format of Trivy before 0.20 "
            "(pre-schema-2, no SchemaVersion); re-run the scan with Trivy 0.20 or newer, "
            "whose `--format json` writes schema version 2",
        )
    report = reader.obj(decoded, "$")
    version = report.get("SchemaVersion")
    if version is None:
        reader.fail("$.SchemaVersion", f"missing; expected {SCHEMA_VERSION} (Trivy 0.20 or newer)")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        reader.fail("$.SchemaVersion", f"expected {SCHEMA_VERSION}, got {version!r}")
    return report


def parse_report(data: str | bytes, name: str = "<report>") -> ScanReport:
    """Read a Trivy JSON report (schema version 2).

    Args:
        data: the report's text.
        name: what to call it in error messages (its file name).

    Returns:
        The report as frozen dataclasses.

    Raises:
        ValueError: not JSON, the pre-0.20 array format, another schema version, or a value
            of the wrong type; the message names `name` and the JSON path.
    """
    reader = _Reader(name)
    if not data.strip():
        raise ValueError(f"{name}: is empty, not a Trivy JSON report")
    try:
        decoded = json.loads(data)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{name}: not JSON ({error.msg} at line {error.lineno} column {error.colno}); "
            "expected a Trivy report written with `--format json`"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{name}: not UTF-8 text ({error.reason}), not a Trivy report") from None
    report = _check_schema(reader, decoded)
    metadata = reader.obj(report.get("Metadata") or {}, "$.Metadata")
    trivy = reader.obj(report.get("Trivy") or {}, "$.Trivy")
    repo_digests = tuple(
        d if isinstance(d, str) else reader.fail(f"$.Metadata.RepoDigests[{i}]", "not a string")
        for i, d in enumerate(reader.array(metadata, "RepoDigests", "$.Metadata"))
    )
    artifact_name = reader.text(report, "ArtifactName", "$") or ""
    artifact_type = reader.text(report, "ArtifactType", "$") or "unknown"
    image_id = reader.text(metadata, "ImageID", "$.Metadata")
    digest = None
    if artifact_type == "container_image":
        candidates = [artifact_name, *repo_digests]
        digest = next((d for c in candidates if (d := reference_digest(c))), None) or image_id
    return ScanReport(
        artifact_name=artifact_name,
        artifact_type=artifact_type,
        artifact_digest=digest,
        image_id=image_id,
        repo_digests=repo_digests,
        created_at=_created_at(reader, report),
        scanner_version=reader.text(trivy, "Version", "$.Trivy"),
        results=tuple(
            _result(reader, r, f"$.Results[{i}]")
            for i, r in enumerate(reader.array(report, "Results", "$"))
        ),
    )


def load_report(path: str | Path) -> ScanReport:
    """Read the Trivy JSON report in file `path` (see `parse_report`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read the report: {error.strerror}") from None
    return parse_report(data, str(path))
