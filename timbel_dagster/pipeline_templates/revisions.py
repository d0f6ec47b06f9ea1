"""New versions from old ones, and tags: `rollback` and `tag` (re-exported by `store`).

A rollback publishes a NEW version with the old content (versions are immutable); a tag is
a movable name for a version, and moving it is audited with the version it left.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from timbel_dagster.pipeline_templates import access, records, state
from timbel_dagster.pipeline_templates.records import LATEST
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.templates import PipelineTemplateTag as T

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


def rollback(
    engine: Engine, actor: str, name: str, to_version: int, release_notes: str = ""
) -> dict[str, Any]:
    """Publish a NEW version carrying `to_version`'s content and parameters
    (`rollback_of_version` set). A no-op (`unchanged: True`) when the latest version
    already has them; the content was validated when `to_version` was published.

    Raises:
        ValueError: `to_version` is the latest. LookupError: no such version.
        TemplateAccessError: not the owner or an admin. TemplateStateError: retired.
    """

    def change() -> dict[str, Any]:
        with engine.begin() as connection:
            user = access.viewer(connection, actor, known=True)
            template = access.managed(connection, user, name, "roll back")
            state.refuse_retired(template, "roll back")
            old = records.version_row(connection, template, int(to_version))
            latest = records.version_row(connection, template)
            if old["version"] == latest["version"]:
                raise ValueError(f"v{to_version} is the latest version of {name!r} already")
            if (old["content"], old["parameters"]) == (latest["content"], latest["parameters"]):
                tags = records.tags_of(connection, template["id"]).get(latest["version"], [])
                return records.record(template, latest, tags) | {"unchanged": True}
            number = latest["version"] + 1
            notes = release_notes or f"rollback to v{old['version']}"
            row = records.insert_version(
                connection,
                template,
                number,
                old["content"],
                old["parameters"],
                notes,
                user.name,
                rollback_of=old["version"],
            )
            append_event(
                connection,
                actor=user.name,
                action="template.rollback",
                target=f"template {name}",
                details={"version": number, "rollback_of_version": old["version"]},
            )
            return records.record(template, row, []) | {"unchanged": False}

    return access.guarded(engine, actor, "template.rollback", f"template {name}", change)


def tag(engine: Engine, actor: str, name: str, tag_name: str, version: int) -> dict[str, Any]:
    """Point `tag_name` at `version`, moving it if it pointed elsewhere (audited with the
    version it left). Returns {"name", "tag", "version", "previous_version", "unchanged"}."""
    if not _TAG.match(tag_name) or tag_name == LATEST:
        raise ValueError(
            f"tag {tag_name!r}: a letter, then letters, digits, '.', '_', '-' (<= 64); "
            f"{LATEST!r} is reserved for the newest version"
        )

    def change() -> dict[str, Any]:
        from sqlalchemy import insert, select, update

        with engine.begin() as connection:
            user = access.viewer(connection, actor, known=True)
            template = access.managed(connection, user, name, "tag")
            state.refuse_retired(template, "tag")
            number = records.version_row(connection, template, int(version))["version"]
            where = (T.template_id == template["id"], T.tag == tag_name)
            previous = connection.execute(select(T.version).where(*where)).scalar_one_or_none()
            result = {
                "name": name,
                "tag": tag_name,
                "version": number,
                "previous_version": previous,
            }
            if previous == number:
                return result | {"unchanged": True}
            values = {
                "version": number,
                "updated_by": user.name,
                "updated_at": dt.datetime.now(dt.UTC),
            }
            if previous is None:
                connection.execute(
                    insert(T).values(template_id=template["id"], tag=tag_name, **values)
                )
            else:
                connection.execute(update(T).where(*where).values(**values))
            append_event(
                connection,
                actor=user.name,
                action="template.tag",
                target=f"template {name}",
                details={"tag": tag_name, "version": number, "previous_version": previous},
            )
            return result | {"unchanged": False}

    return access.guarded(engine, actor, "template.tag", f"template {name}", change)
