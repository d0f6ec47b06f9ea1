"""Parameters of stored templates: their schema, the values an application gives, rendering.

A version's schema maps each parameter name to `{"default", "description", "required"}`.
Required parameters take no default; an optional one without a default renders as the
empty string. Stored templates are written by other people and rendered on the machine of
whoever applies them, so they render in the bounded sandbox (no attribute walks to Python
internals; limits on work, size and time), the same environment as `generate.render`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jinja2.sandbox import SecurityError

from timbel_dagster.pipeline_templates.generate import environment
from timbel_dagster.security.template_sandbox import TemplateRefused

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_KEYS = ("default", "description", "required")
_UNDEFINED = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


class TemplateRenderError(ValueError):
    """The template text itself is broken: Jinja2 syntax, an undeclared parameter, or
    something the sandbox forbids. `line` is the template line when Jinja2 knows it."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


class TemplateRefusedError(TemplateRenderError, SecurityError):
    """The sandbox refused the template: Python internals, or a limit of work, size or time
    crossed (`template_sandbox.TemplateRefused`)."""


def normalise_schema(schema: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The parameters schema in its stored form, checked.

    Raises:
        ValueError: a bad name, an unknown key, a non-boolean `required`, a required
            parameter with a default, or a default that is not JSON.
    """
    normal: dict[str, dict[str, Any]] = {}
    if schema is None:
        return normal
    if not isinstance(schema, Mapping):
        raise ValueError("the parameters schema must map parameter names to their settings")
    for name, spec in schema.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"parameter {name!r}: a name is letters, digits and _ (not starting with a digit)"
            )
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):
            raise ValueError(f"parameter {name!r}: its settings must be a mapping of {_KEYS}")
        unknown = sorted(set(spec) - set(_KEYS))
        if unknown:
            raise ValueError(
                f"parameter {name!r}: unknown setting(s) {', '.join(map(str, unknown))}; "
                f"allowed: {', '.join(_KEYS)}"
            )
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise ValueError(f"parameter {name!r}: required must be true or false")
        if required and spec.get("default") is not None:
            raise ValueError(f"parameter {name!r}: a required parameter takes no default")
        description = spec.get("description") or ""
        if not isinstance(description, str):
            raise ValueError(f"parameter {name!r}: description must be text")
        try:
            json.dumps(spec.get("default"))
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name!r}: the default must be JSON data") from None
        normal[name] = {
            "default": spec.get("default"),
            "description": description,
            "required": required,
        }
    return normal


def resolve(
    schema: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any] | None, what: str
) -> dict[str, Any]:
    """The values to render with: the given ones, defaults for the rest.

    Args:
        schema: the version's parameters schema.
        given: the caller's values.
        what: names the template version in messages (`template 'ci' v3`).

    Raises:
        ValueError: an unknown parameter, or a required one missing (all of them named).
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(schema))
    if unknown:
        takes = ", ".join(sorted(schema)) or "no parameters"
        raise ValueError(f"{what}: unknown parameter(s) {', '.join(unknown)}; it takes: {takes}")
    missing = sorted(n for n, spec in schema.items() if spec.get("required") and n not in given)
    if missing:
        described = [
            f"{n} ({schema[n]['description']})" if schema[n].get("description") else n
            for n in missing
        ]
        raise ValueError(f"{what}: missing required parameter(s) {', '.join(described)}")
    values = {
        n: ("" if spec.get("default") is None else spec["default"]) for n, spec in schema.items()
    }
    return values | given


def sample_values(schema: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Values to check a template with at publishing: defaults, and for a required parameter
    its own name (an identifier fits most places a value goes in a pipeline file)."""
    return {
        name: name
        if spec.get("required")
        else ("" if spec.get("default") is None else spec["default"])
        for name, spec in schema.items()
    }


def render(template_text: str, values: Mapping[str, Any]) -> str:
    """Render a stored template in the sandbox.

    Raises:
        TemplateRenderError: Jinja2 syntax (with its line), a parameter the schema does not
            declare; TemplateRefusedError: an operation the sandbox forbids or a limit.
    """
    import jinja2

    try:
        template = environment().from_string(template_text)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateRenderError(
            f"Jinja2 template syntax error: {error.message}", error.lineno
        ) from None
    try:
        return template.render(**values)
    except jinja2.UndefinedError as error:
        match = _UNDEFINED.search(str(error.message))
        name = (match.group(1) or match.group(2)) if match else str(error.message)
        raise TemplateRenderError(
            f"the template uses {name!r}, which is not one of its parameters"
        ) from None
    except TemplateRefused as error:
        raise TemplateRefusedError(error.detail, error.line) from None
    except Exception as error:  # user-written logic: 1/0, "a" + 1, a missing key
        raise TemplateRenderError(
            f"the template failed to render: {type(error).__name__}: {error}"
        ) from None
