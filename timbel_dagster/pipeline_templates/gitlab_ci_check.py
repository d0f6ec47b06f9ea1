""".gitlab-ci.yml validation: YAML as GitLab reads it, GitLab's JSON schema, then its rules.

The schema is the one GitLab publishes for editors, as vendored by check-jsonschema
(`check_jsonschema/builtin_schemas/vendor/gitlab-ci.json`). It is applied to the file as
written (with `!reference` tags resolved, `extends` not applied, since templates are partial
by design); the semantic rules in `gitlab_ci_semantics` then run on the `extends`-expanded
configuration. Every error carries the line and column of the node it is about.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

from timbel_dagster.pipeline_templates import gitlab_yaml
from timbel_dagster.pipeline_templates.gitlab_ci_semantics import semantic_issues
from timbel_dagster.pipeline_templates.results import Issue, ValidationResult, issue, result

CHECKER = "yaml+schema"
# `[^()]`, not `[^)]`: key names come from the file, and in `('('('...` each `(` was
# scanned on to the end (quadratic)
_UNEXPECTED = re.compile(r"'([^']+)' (?:was|were) unexpected|\(('[^()]+) (?:was|were) unexpected")


@functools.cache
def schema_validator() -> Any:
    """A validator for GitLab's CI schema, built once per process (the schema is 128 kB)."""
    import jsonschema

    vendor = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    schema = json.loads((vendor / "gitlab-ci.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _unexpected_keys(message: str) -> list[str]:
    """The property names an additionalProperties error names."""
    match = _UNEXPECTED.search(message)
    if not match:
        return []
    return re.findall(r"'([^']+)'", match.group(0))


def _label(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) or "top level"


def schema_issues(data: Any, loaded: gitlab_yaml.LoadedYaml) -> list[Issue]:
    """Schema errors, each at the node (or for an unexpected key, the key) it is about.

    Errors from `anyOf`/`oneOf` alternatives are narrowed to the alternative that came
    closest, as check-jsonschema and GitLab's editor do.
    """
    from jsonschema.exceptions import best_match

    problems: list[Issue] = []
    for error in schema_validator().iter_errors(data):
        chosen = best_match([error])  # descends into anyOf/oneOf to the closest branch
        path = tuple(chosen.absolute_path)
        message = chosen.message
        reasons = list(dict.fromkeys(c.message for c in chosen.context if not c.path))
        if reasons:  # a value matching none of several shapes: say what each wanted
            message = f"{message} ({'; '.join(reasons[:3])})"
        if chosen.validator == "additionalProperties":
            for key in _unexpected_keys(chosen.message) or [""]:
                where = loaded.position((*path, key), key=True) if key else loaded.position(path)
                problems.append(issue(*where, f"{_label(path)}: {message}"))
            continue
        problems.append(issue(*loaded.position(path), f"{_label(path)}: {message}"))
    return problems


def check_gitlab_ci_text(text: str, name: str = ".gitlab-ci.yml") -> ValidationResult:
    """Validate GitLab CI YAML given as text (`name` labels the result)."""
    loaded = gitlab_yaml.load(text)
    if loaded.errors or loaded.data is None:
        return result(name, "gitlab-ci", CHECKER, loaded.errors, loaded.warnings)
    if not isinstance(loaded.data, dict):
        return result(name, "gitlab-ci", CHECKER, [issue(1, 1, "the file is not a mapping")])
    warnings = list(loaded.warnings)
    lenient = "include" in loaded.data
    if lenient:
        warnings.append("include: files are not fetched; jobs they define are not checked")
    # extends first, then !reference against the expanded config, as GitLab orders them
    try:
        expanded, errors, semantic_warnings = semantic_issues(loaded.data, loaded, lenient)
        as_written, reference_errors = gitlab_yaml.resolve_references(loaded.data, expanded)
    except gitlab_yaml.YamlTooLargeError as error:
        return result(name, "gitlab-ci", CHECKER, [issue(None, None, error.problem)], warnings)
    errors = [*errors, *reference_errors]
    if not reference_errors:
        errors.extend(schema_issues(gitlab_yaml.flatten_like_gitlab(as_written), loaded))
    return result(name, "gitlab-ci", CHECKER, errors, [*warnings, *semantic_warnings])


def check_gitlab_ci(path: Path) -> ValidationResult:
    """Validate one `.gitlab-ci.yml` file.

    Raises:
        LookupError: the file does not exist.
        ValueError: it is not UTF-8 text.
    """
    try:
        with Path(path).open("rb") as handle:  # never more than the limit into memory
            data = handle.read(gitlab_yaml.MAX_FILE_BYTES + 1)
        too_large = gitlab_yaml.size_issue(len(data))
        if too_large:
            return result(str(path), "gitlab-ci", CHECKER, [too_large])
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text
    except FileNotFoundError:
        raise LookupError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as UTF-8 text: {error}") from error
    return check_gitlab_ci_text(text, str(path))
