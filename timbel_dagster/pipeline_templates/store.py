"""Stored pipeline templates: publish immutable versions, list, show, diff, roll back, tag.

`rollback` and `tag` live in `revisions` and are re-exported here.

Versions are only ever inserted (no function here or elsewhere updates one); a rollback
publishes a new version carrying the old content. Every change is one transaction together
with its audit event; a refused change (rights) is audited as `<action>.refused`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.pipeline_templates import access, params, records, state
from timbel_dagster.pipeline_templates.revisions import rollback, tag
from timbel_dagster.pipeline_templates.validate import FILE_NAMES, validate_file
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.templates import TEMPLATE_KINDS, VISIBILITIES, PipelineTemplate

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

__all__ = [
    "FILE_NAMES",
    "TemplateInvalidError",
    "diff",
    "publish",
    "rollback",
    "show",
    "tag",
    "validate_content",
    "versions",
]


def _position(issue: Mapping[str, Any]) -> str:
    if not issue.get("line"):
        return ""
    column = f", column {issue['column']}" if issue.get("column") else ""
    return f"line {issue['line']}{column}: "


class TemplateInvalidError(ValueError):
    """The template does not validate; nothing was saved. `errors` are
    [{"line", "column", "message"}] in the content rendered with the parameters' defaults."""

    def __init__(self, name: str, file_name: str, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        shown = "; ".join(_position(e) + e["message"] for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"template {name!r} is not a valid {file_name}: {shown}{more}")


def validate_content(
    name: str, kind: str, content: str, schema: Mapping[str, Any]
) -> dict[str, Any]:
    """Render with the defaults and validate as the file the template produces.

    Raises:
        TemplateInvalidError: a Jinja2 problem or the validator's errors (with positions).
    """

    file_name = FILE_NAMES[kind]
    try:
        rendered = params.render(content, params.sample_values(schema))
    except params.TemplateRenderError as error:
        raise TemplateInvalidError(
            name, file_name, [{"line": error.line, "column": None, "message": str(error)}]
        ) from None
    with tempfile.TemporaryDirectory(prefix="timbel-template-") as folder:
        path = Path(folder) / file_name
        path.write_text(rendered, encoding="utf-8")
        checked = validate_file(path)
    if not checked["valid"]:
        raise TemplateInvalidError(name, file_name, list(checked["errors"]))
    return dict(checked)


def _create_template(
    connection: Connection,
    user: access.Viewer,
    name: str,
    kind: str,
    visibility: str,
    team: str | None,
    description: str | None,
) -> dict[str, Any]:
    from sqlalchemy import insert

    team = team or user.team
    if visibility == "team" and not team:
        raise ValueError(f"{user.name} has no team in the users table: give a team")
    now = dt.datetime.now(dt.UTC)
    row = {
        "id": uuid.uuid4(),
        "name": name,
        "kind": kind,
        "owner": user.name,
        "team": team,
        "visibility": visibility,
        "description": description or "",
        "created_at": now,
        "updated_at": now,
    }
    connection.execute(insert(PipelineTemplate).values(**row))
    return row | {"grantees": []}


def _check_republish(user: access.Viewer, template: Mapping[str, Any], kind: str) -> None:
    if not access.may_manage(user, template):
        owner = f" ({template['owner']})" if access.can_see(user, template) else ""
        raise access.TemplateAccessError(
            f"{user.name} may not publish template {template['name']!r}: the name is taken "
            f"and only its owner{owner} or an admin may publish versions of it"
        )
    if template["kind"] != kind:
        raise ValueError(f"template {template['name']!r} is a {template['kind']}, not a {kind}")
    state.refuse_retired(template, "publish a version of")


def _republish_settings(
    connection: Connection,
    user: access.Viewer,
    template: dict[str, Any],
    visibility: str | None,
    team: str | None,
) -> dict[str, Any]:
    """Apply a visibility or team given with a later publication (audited)."""

    new = (visibility or template["visibility"], team or template["team"])
    if new == (template["visibility"], template["team"]):
        return template
    if new[0] == "team" and not new[1]:
        raise ValueError(f"template {template['name']!r} has no team: give one")
    access.update_visibility(connection, template, *new)
    append_event(
        connection,
        actor=user.name,
        action="template.visibility",
        target=f"template {template['name']}",
        details={"from": template["visibility"], "to": new[0], "team": new[1]},
    )
    return template | {"visibility": new[0], "team": new[1]}


def publish(
    engine: Engine,
    actor: str,
    name: str,
    kind: str,
    content: str,
    *,
    parameters: Mapping[str, Any] | None = None,
    release_notes: str = "",
    visibility: str | None = None,
    team: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Validate `content` and store it as the template's next version.

    The first publication creates the template, owned by `actor` (`visibility` default
    private, `team` default the actor's). Later ones need the owner or an admin; a
    `visibility`/`team` given then changes them (audited as `template.visibility`).
    Content and parameters identical to the latest version are a no-op: that version comes
    back with `unchanged: True` and nothing is written.

    Returns:
        The version (see `show`) plus `unchanged` and the validator's `warnings`.

    Raises:
        TemplateInvalidError: the content does not validate (nothing saved).
        ValueError: a bad name, kind, visibility or parameters schema; another kind than the
            stored template's. TemplateAccessError: not the owner or an admin.
            TemplateStateError: the template is retired (audited `template.publish.refused`).
    """
    if not _NAME.match(name):
        raise ValueError(f"template name {name!r}: letters, digits, '.', '_' and '-' (<= 128)")
    if kind not in TEMPLATE_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(TEMPLATE_KINDS)}")
    if visibility is not None and visibility not in VISIBILITIES:
        raise ValueError(f"visibility {visibility!r} is not one of {', '.join(VISIBILITIES)}")
    schema = params.normalise_schema(parameters)
    checked = validate_content(name, kind, content, schema)

    def change() -> dict[str, Any]:
        with engine.begin() as connection:
            user = access.viewer(connection, actor, known=True)
            template = access.find(connection, name, lock=True)
            if template is None:
                template = _create_template(
                    connection, user, name, kind, visibility or "private", team, description
                )
                latest = None
            else:
                _check_republish(user, template, kind)
                template = _republish_settings(connection, user, template, visibility, team)
                latest = records.latest(connection, template["id"])
            if latest and latest["content"] == content and latest["parameters"] == schema:
                tags = records.tags_of(connection, template["id"]).get(latest["version"], [])
                return records.record(template, latest, tags) | {"unchanged": True}
            number = latest["version"] + 1 if latest else 1
            row = records.insert_version(
                connection, template, number, content, schema, release_notes, user.name
            )
            append_event(
                connection,
                actor=user.name,
                action="template.publish",
                target=f"template {name}",
                details={"version": number, "kind": kind, "sha256": row["content_sha256"]},
            )
            return records.record(template, row, []) | {"unchanged": False}

    published = access.guarded(engine, actor, "template.publish", f"template {name}", change)
    return published | {"warnings": checked.get("warnings", [])}


def versions(bind: Engine | Connection, viewer: str, name: str) -> list[dict[str, Any]]:
    """Every version of a template the viewer can see, oldest first, without content."""
    from sqlalchemy import select

    with records.reading(bind) as connection:
        template = access.visible(connection, access.viewer(connection, viewer), name)
        table = records.versions_table()
        query = select(table).where(table.c.template_id == template["id"])
        tags = records.tags_of(connection, template["id"])
        rows = connection.execute(query.order_by(table.c.version)).mappings()
        found = [records.record(template, r, tags.get(r["version"], [])) for r in rows]
    return [{k: v for k, v in r.items() if k != "content"} for r in found]


def show(
    bind: Engine | Connection,
    viewer: str,
    name: str,
    version: int | str | None = None,
    *,
    tag: str | None = None,
) -> dict[str, Any]:
    """One version with its content: by number, by tag, or the latest."""
    with records.reading(bind) as connection:
        template = access.visible(connection, access.viewer(connection, viewer), name)
        row = records.version_row(connection, template, version, tag)
        tags = records.tags_of(connection, template["id"]).get(row["version"], [])
        return records.record(template, row, tags) | {"description": template["description"]}


def diff(bind: Engine | Connection, viewer: str, name: str, a: int | str, b: int | str) -> str:
    """A unified diff from version (or tag) `a` to `b`, labelled `NAME@vN`; a change of the
    parameters schema follows as a second diff of its JSON. Empty when they are the same."""
    with records.reading(bind) as connection:
        template = access.visible(connection, access.viewer(connection, viewer), name)
        old = records.version_row(connection, template, a)
        new = records.version_row(connection, template, b)
    labels = (f"{name}@v{old['version']}", f"{name}@v{new['version']}")
    text = "".join(
        difflib.unified_diff(
            old["content"].splitlines(keepends=True),
            new["content"].splitlines(keepends=True),
            *labels,
        )
    )
    if text and not text.endswith("\n"):
        text += "\n\\ No newline at end of file\n"
    if old["parameters"] != new["parameters"]:
        dumped = [json.dumps(v["parameters"], indent=2, sort_keys=True) + "\n" for v in (old, new)]
        text += "".join(
            difflib.unified_diff(
                dumped[0].splitlines(keepends=True),
                dumped[1].splitlines(keepends=True),
                *(f"{label} parameters" for label in labels),
            )
        )
    return text
