"""Retiring a stored template, and restoring it: `retire` and `restore`.

A template is never deleted: its versions are its history, and the usage rows and the audit
log name them. Retiring is the delete the API and the CLI offer instead. A retired template
is hidden from the marketplace list (unless asked for), and takes no new version (publish,
rollback), rating, tag or application; its versions stay readable by whoever could read them
(`show`, `versions`, `diff`, `reviews`). Only an explicit `restore` puts it back in use:
publishing under the name of a retired template is refused rather than restoring it as a
side effect, so that bringing back a template someone retired, for a reason, is one decision
that the audit log shows as such.

Both need the owner or an admin (as publishing does) and a known, enabled user; each change
is one transaction with its audit event (`template.retire`, `template.restore`), and a
refusal (rights, or already retired / not retired) is audited as `<action>.refused`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from timbel_dagster.pipeline_templates import access, state
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.templates import PipelineTemplate

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MAX_REASON = 2000


def _result(name: str, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "retired_at": template.get("retired_at"),
        "retired_by": template.get("retired_by"),
        "retired_reason": template.get("retired_reason"),
    }


def retire(
    engine: Engine, actor: str, name: str, reason: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Retire template `name`, saying why (audited `template.retire`).

    Returns:
        {"name", "retired_at", "retired_by", "retired_reason"}.

    Raises:
        ValueError: an empty or too long reason (nothing audited: nothing was attempted).
        LookupError: no such template the actor can see, or an unknown or disabled actor.
        TemplateAccessError: not its owner or an admin. TemplateStateError: retired already.
            Both audited as `template.retire.refused`.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("give a reason for retiring the template (--reason / ?reason=)")
    if len(reason) > MAX_REASON:
        raise ValueError(f"the reason has {len(reason)} characters; at most {MAX_REASON}")

    def change() -> dict[str, Any]:
        from sqlalchemy import update

        with engine.begin() as connection:
            user = access.viewer(connection, actor, known=True)
            template = access.managed(connection, user, name, "retire")
            if template["retired_at"] is not None:
                raise state.TemplateStateError(
                    f"template {name!r} is {state.retired_note(template)} already"
                )
            at = now or dt.datetime.now(dt.UTC)
            values = {"retired_at": at, "retired_by": user.name, "retired_reason": reason}
            connection.execute(
                update(PipelineTemplate)
                .where(PipelineTemplate.id == template["id"])
                .values(**values, updated_at=at)
            )
            append_event(
                connection,
                actor=user.name,
                action="template.retire",
                target=f"template {name}",
                details={"reason": reason},
            )
            return _result(name, values)

    return access.guarded(engine, actor, "template.retire", f"template {name}", change)


def restore(engine: Engine, actor: str, name: str) -> dict[str, Any]:
    """Put retired template `name` back in use (audited `template.restore`, with who retired
    it and why, since the row forgets them).

    Returns:
        {"name", "retired_at", "retired_by", "retired_reason"}: all None now.

    Raises:
        LookupError: no such template the actor can see, or an unknown or disabled actor.
        TemplateAccessError: not its owner or an admin. TemplateStateError: not retired.
            Both audited as `template.restore.refused`.
    """

    def change() -> dict[str, Any]:
        from sqlalchemy import update

        with engine.begin() as connection:
            user = access.viewer(connection, actor, known=True)
            template = access.managed(connection, user, name, "restore")
            if template["retired_at"] is None:
                raise state.TemplateStateError(f"template {name!r} is not retired")
            connection.execute(
                update(PipelineTemplate)
                .where(PipelineTemplate.id == template["id"])
                .values(
                    retired_at=None,
                    retired_by=None,
                    retired_reason=None,
                    updated_at=dt.datetime.now(dt.UTC),
                )
            )
            append_event(
                connection,
                actor=user.name,
                action="template.restore",
                target=f"template {name}",
                details={
                    "retired_at": template["retired_at"].isoformat(),
                    "retired_by": template["retired_by"],
                    "reason": template["retired_reason"],
                },
            )
            return _result(name, {})

    return access.guarded(engine, actor, "template.restore", f"template {name}", change)
