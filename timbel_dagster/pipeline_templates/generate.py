"""Render pipeline templates (Jinja2) and generate a Jenkinsfile or `.gitlab-ci.yml` for a
repository from its analysis.

Templates see the parameters, plus for `generate` the plan from `stacks.plan`. A template that
uses a parameter nobody gave fails with a ValueError naming it (StrictUndefined), never with a
silently empty value. Filters: `groovy` (a single-quoted Groovy string literal), `yaml` (a
double-quoted YAML scalar), `sh` (a shell word), `with_cache(dir)` (fills `{cache}`).

A template given with `--template FILE` (or to `template preview`) is someone else's text, so
every template renders in the bounded sandbox (`security.template_sandbox`): no Python
internals, and limits on work, size and time (`TemplateRefused`, one line).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from timbel_dagster.pipeline_templates.results import ValidationResult
from timbel_dagster.pipeline_templates.stacks import plan
from timbel_dagster.pipeline_templates.validate import FILE_NAMES, detect_kind, validate_file

KINDS = {"jenkinsfile": "jenkinsfile.j2", "gitlab-ci": "gitlab-ci.yml.j2"}
_UNDEFINED = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


def groovy_string(value: Any) -> str:
    """A single-quoted Groovy literal: no `$` interpolation, so shell variables pass through."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{text}'"


def yaml_string(value: Any) -> str:
    """A double-quoted YAML scalar (JSON string syntax is valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def _with_cache(value: Any, directory: str) -> str:
    return str(value).replace("{cache}", directory)


@functools.cache
def environment() -> Any:
    """The sandbox every pipeline template renders in (built-in, `--template FILE`, stored)."""
    import jinja2

    # lazy: security.template_sandbox loads Jinja2; `timbel --help` loads without it
    from timbel_dagster.security.template_sandbox import BoundedSandbox

    sandbox = BoundedSandbox(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # pipeline files, not HTML
    )
    sandbox.filters.update(
        groovy=groovy_string, yaml=yaml_string, sh=shlex.quote, with_cache=_with_cache
    )
    return sandbox


def render(template_text: str, parameters: Mapping[str, Any], name: str | None = None) -> str:
    """Render a Jinja2 template with the parameters, in the bounded sandbox.

    Args:
        template_text: the template.
        parameters: its values.
        name: names the template in a refusal (its file name).

    Raises:
        ValueError: the template is not valid Jinja2 (naming the line), or uses a parameter
            that was not given (naming it).
        TemplateRefused: (a ValueError too) it reaches for Python internals or crosses a
            limit of work, size or time.
    """
    import jinja2

    try:
        template = environment().from_string(template_text)
    except jinja2.TemplateSyntaxError as error:
        raise ValueError(f"template syntax error at line {error.lineno}: {error.message}") from None
    template.name = name
    try:
        return template.render(**parameters)
    except jinja2.UndefinedError as error:
        match = _UNDEFINED.search(str(error.message))
        name = (match.group(1) or match.group(2)) if match else str(error.message)
        raise ValueError(
            f"template parameter {name!r} is missing (give it with --param {name}=VALUE)"
        ) from None


def builtin_template(kind: str) -> str:
    """The text of the built-in template for `jenkinsfile` or `gitlab-ci`.

    Raises:
        ValueError: unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    folder = importlib.resources.files("timbel_dagster.pipeline_templates") / "builtin"
    return (folder / KINDS[kind]).read_text(encoding="utf-8")


def generate(
    analysis: Mapping[str, Any],
    kind: str,
    parameters: Mapping[str, Any] | None = None,
    template_text: str | None = None,
    template_name: str | None = None,
) -> str:
    """A Jenkinsfile (`kind="jenkinsfile"`) or `.gitlab-ci.yml` (`kind="gitlab-ci"`) fitted
    to the analysed repository: build, test, Trivy scan, image (with a Dockerfile), deploy
    (with Kubernetes manifests or a Helm chart; default branch only).

    Args:
        analysis: `timbel analyze-repo` output (see `stacks`).
        kind: jenkinsfile or gitlab-ci.
        parameters: overrides (app_name, default_branch, registry, namespace, build_tool,
            trivy_severity, java_version, node_version, python_version, go_version,
            helm_chart, k8s_manifests, deploy=false, ...).
        template_text: a custom template instead of the built-in one.
        template_name: its name in messages (the file name).

    Raises:
        ValueError: unknown kind, nothing to build, or a template problem (TemplateRefused:
            it reaches for Python internals or crosses a limit).
    """

    if template_text is None:
        template_text, template_name = builtin_template(kind), KINDS[kind]
    return render(template_text, plan(analysis, parameters or {}), template_name)


def preview(
    template_text: str,
    parameters: Mapping[str, Any],
    kind: str | None = None,
    name: str | None = None,
) -> tuple[str, ValidationResult]:
    """Render a template and validate the result as the pipeline file it produces.

    Args:
        template_text: Jinja2 template text.
        parameters: its parameters.
        kind: jenkinsfile or gitlab-ci; None tells from the rendered content.
        name: the template's name in messages (its file name).

    Returns:
        The rendered text and its validation result.
    """

    text = render(template_text, parameters, name)
    kind = kind or detect_kind(Path("rendered"), text)
    if kind not in FILE_NAMES:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(FILE_NAMES)}")
    with tempfile.TemporaryDirectory(prefix="timbel-preview-") as folder:
        path = Path(folder) / FILE_NAMES[kind]
        path.write_text(text, encoding="utf-8")
        checked = validate_file(path)
    checked["path"] = f"<preview of {FILE_NAMES[kind]}>"
    return text, checked
