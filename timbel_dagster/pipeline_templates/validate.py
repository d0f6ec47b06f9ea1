"""Validate pipeline files of either kind: Jenkinsfiles and `.gitlab-ci.yml`.

`validate_file(path)` checks one file; `validate_many(paths)` checks a batch, all its
Jenkinsfiles compiled in one Groovy JVM.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from timbel_dagster.pipeline_templates.gitlab_ci_check import check_gitlab_ci
from timbel_dagster.pipeline_templates.gitlab_yaml import MAX_FILE_BYTES
from timbel_dagster.pipeline_templates.jenkinsfile_check import check_jenkinsfiles
from timbel_dagster.pipeline_templates.results import ValidationResult

JENKINSFILE = "jenkinsfile"
GITLAB_CI = "gitlab-ci"
# The file each kind is checked as (and a template of that kind is applied as).
FILE_NAMES = {JENKINSFILE: "Jenkinsfile", GITLAB_CI: ".gitlab-ci.yml"}
# `[ \t]*`, not `\s*`: with re.M a `\s*` crossed lines, so blank lines were rescanned from
# every line start (quadratic in a file of blank lines)
_GROOVY_START = re.compile(r"^[ \t]*(#!|@Library|import\s|pipeline\s*\{|node\s*[({]|def\s)", re.M)
_YAML_JOB = re.compile(r"^(stages|script|include|default|workflow|variables)\s*:", re.M)


def _is_yaml_mapping(text: str) -> bool:
    import yaml

    try:  # compose, not load: GitLab's !reference tags must not stop it
        return isinstance(yaml.compose(text, Loader=yaml.SafeLoader), yaml.MappingNode)
    except (yaml.YAMLError, RecursionError):  # nested too deep for the composer: not CI YAML
        return False


def detect_kind(path: Path, text: str | None = None) -> str:
    """`jenkinsfile` or `gitlab-ci`, from the file name, else from the content.

    Raises:
        ValueError: neither the name nor the content says which.
    """
    name = Path(path).name.lower()
    if name.startswith("jenkinsfile") or name.endswith((".jenkinsfile", ".groovy")):
        return JENKINSFILE
    if name.endswith(("gitlab-ci.yml", "gitlab-ci.yaml")):
        return GITLAB_CI
    if text is None:
        try:  # the kind shows at the top; the checker refuses a longer file anyway
            with Path(path).open("rb") as handle:
                text = handle.read(MAX_FILE_BYTES).decode("utf-8", errors="replace")
        except FileNotFoundError:
            raise LookupError(f"{path}: no such file") from None
    if _GROOVY_START.search(text):
        return JENKINSFILE
    if name.endswith((".yml", ".yaml")) or _YAML_JOB.search(text) or _is_yaml_mapping(text):
        return GITLAB_CI
    raise ValueError(
        f"{path}: cannot tell whether this is a Jenkinsfile or a .gitlab-ci.yml (name it "
        "Jenkinsfile* / *.groovy or *.gitlab-ci.yml)"
    )


def validate_many(
    paths: Sequence[Path], groovy: str | None = None, java_home: Path | None = None
) -> list[ValidationResult]:
    """Validate several files, in the given order; all Jenkinsfiles share one Groovy JVM.

    Args:
        paths: files of either kind (detected by `detect_kind`).
        groovy: the groovy executable (None: look it up on PATH; missing means the labelled
            fallback check).
        java_home: the JDK for groovy (None: Debian's JDK 17).

    Raises:
        LookupError: a file does not exist.
        ValueError: a file's kind cannot be told, or it is not UTF-8 text.
    """
    kinds = [detect_kind(Path(p)) for p in paths]
    pairs = list(zip(paths, kinds, strict=True))
    jenkinsfiles = list(dict.fromkeys(Path(p) for p, kind in pairs if kind == JENKINSFILE))
    results = check_jenkinsfiles(jenkinsfiles, groovy, java_home)
    checked = dict(zip(jenkinsfiles, results, strict=True))
    return [
        checked[Path(p)] if kind == JENKINSFILE else check_gitlab_ci(Path(p)) for p, kind in pairs
    ]


def validate_file(
    path: Path, groovy: str | None = None, java_home: Path | None = None
) -> ValidationResult:
    """Validate one Jenkinsfile or `.gitlab-ci.yml`.

    Returns:
        {"path", "valid", "kind", "checker", "errors": [{"line", "column", "message"}],
        "warnings": [...]}, errors sorted by position (1-based lines and columns).
    """
    return validate_many([path], groovy, java_home)[0]


def validate_text(text: str, kind: str | None = None) -> ValidationResult:
    """Validate pipeline-file text that is not a file (an API body): written to a private
    temporary directory under the kind's file name and checked like any file, with the
    checkers' size and depth limits; nothing in it is run.

    Args:
        text: the Jenkinsfile or `.gitlab-ci.yml`.
        kind: `jenkinsfile` or `gitlab-ci`; None tells from the content.

    Raises:
        ValueError: an unknown kind, or one the content does not tell.
    """
    kind = kind or detect_kind(Path("pipeline file"), text)
    if kind not in FILE_NAMES:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(FILE_NAMES)}")
    with tempfile.TemporaryDirectory(prefix="timbel-validate-") as folder:
        path = Path(folder) / FILE_NAMES[kind]
        path.write_text(text, encoding="utf-8")
        checked = validate_file(path)
    checked["path"] = FILE_NAMES[kind]
    return checked
