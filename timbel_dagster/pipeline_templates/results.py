"""The shape every pipeline-file validator returns: JSON-ready dictionaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict


class Issue(TypedDict):
    """One problem at a 1-based line and column (None when it concerns the whole file)."""

    line: int | None
    column: int | None
    message: str


class ValidationResult(TypedDict):
    """What validating one file found.

    `kind` is `jenkinsfile` (declarative), `jenkinsfile-scripted` or `gitlab-ci`; `checker`
    names what checked the syntax (`groovy-compiler`, `fallback-tokeniser`, `yaml+schema`).
    """

    path: str
    valid: bool
    kind: str
    checker: str
    errors: list[Issue]
    warnings: list[str]


def issue(line: int | None, column: int | None, message: str) -> Issue:
    return {"line": line, "column": column, "message": message}


def sorted_issues(issues: list[Issue]) -> list[Issue]:
    """By position (whole-file issues first), duplicates dropped."""
    unique = {(i["line"], i["column"], i["message"]): i for i in issues}
    return sorted(unique.values(), key=lambda i: (i["line"] or 0, i["column"] or 0, i["message"]))


def result(
    path: str, kind: str, checker: str, errors: list[Issue], warnings: list[str] | None = None
) -> ValidationResult:
    ordered = sorted_issues(errors)
    return {
        "path": path,
        "valid": not ordered,
        "kind": kind,
        "checker": checker,
        "errors": ordered,
        "warnings": list(warnings or []),
    }


def shared_warnings(results: Sequence[ValidationResult]) -> dict[str, list[str]]:
    """Warnings that two or more of the files got word for word (`groovy is not installed`
    once per Jenkinsfile), each with the paths that got it, in order of first appearance."""
    paths: dict[str, list[str]] = {}
    for checked in results:
        for warning in checked["warnings"]:
            found = paths.setdefault(warning, [])
            if checked["path"] not in found:
                found.append(checked["path"])
    return {warning: found for warning, found in paths.items() if len(found) > 1}
