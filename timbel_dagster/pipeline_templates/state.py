"""What a template's state allows: a retired template (`retirement`) takes no new version,
rating, tag or application. `TemplateStateError` is that refusal (the API's 409); `access.
guarded` audits it as `<action>.refused` as it does a refusal for lack of rights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TemplateStateError(ValueError):
    """The template's state does not allow this (it is retired, or a restored one is not);
    nothing changed (it is audited). The API answers 409."""


def retired_note(template: Mapping[str, Any]) -> str:
    """`retired on 2026-12-05 by dana: REASON` for a retired template's messages."""
    at = template["retired_at"]
    when = f" on {at:%Y-%m-%d}" if at is not None else ""
    why = f": {template['retired_reason']}" if template.get("retired_reason") else ""
    return f"retired{when} by {template['retired_by']}{why}"


def refuse_retired(template: Mapping[str, Any], doing: str) -> None:
    """Refuse to `doing` (`publish a version of`, `rate`, ...) a retired template.

    Raises:
        TemplateStateError: the template is retired; the message says how to restore it.
    """
    if template.get("retired_at") is None:
        return
    name = template["name"]
    raise TemplateStateError(
        f"cannot {doing} template {name!r}: it was {retired_note(template)}; its owner or an "
        f"admin can restore it (`timbel template restore {name}`, "
        f"POST /api/v1/templates/{name}/restore)"
    )
