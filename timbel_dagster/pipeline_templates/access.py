"""Who may see and change a stored pipeline template; visibility and sharing.

Rules (`can_see`): public templates are seen by everyone; `team` ones by the members of the
template's team; private ones by their owner. Grantees (users, or every member of a granted
team) see a template whatever its visibility, its owner always does, and admins see all.
Only the owner or an admin may publish versions, roll back, tag, share or change visibility;
a refused attempt is audited as `<action>.refused`. A template a user cannot see reads as
"no such template" so that private names do not leak through error messages. A retired
template (`retirement`) refuses new versions, ratings, tags and applications with a
`state.TemplateStateError`, audited the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from timbel_dagster.pipeline_templates.state import TemplateStateError
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people.users import DisabledUserError, find_user, require_user
from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.schema.templates import (
    VISIBILITIES,
    PipelineTemplate,
    PipelineTemplateShare,
)
from timbel_dagster.warehouse.schema.templates import PipelineTemplateShare as S

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")
ADMIN = "admin"


class TemplateAccessError(ValueError):
    """The acting user may not do this to the template; nothing changed (it is audited)."""


@dataclass(frozen=True)
class Viewer:
    """A person as the users table knows them (`role`/`team` None for unknown names)."""

    name: str
    role: str | None = None
    team: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def viewer(connection: Connection, name: str, *, known: bool = False) -> Viewer:
    """The user `name` from the users table (`warehouse.people.users`).

    Args:
        known: the user must exist and be enabled (everyone who changes something must).
            Otherwise an unknown or disabled user is a viewer with no role and no team.

    Raises:
        UserRefusedError (a LookupError): `known` and the user is unknown or disabled.
    """
    if known:
        person = require_user(connection, name, acting=True)
    else:
        found = find_user(connection, name)
        if found is None or not found.enabled:
            return Viewer(name)
        person = found
    return Viewer(person.name, person.role, person.team)


def can_see(user: Viewer, template: Mapping[str, Any]) -> bool:
    """Whether `user` may see `template` (a row with `grantees`: [(kind, name), ...])."""
    grantees = {tuple(g) for g in template.get("grantees", ())}
    if user.is_admin or user.name == template["owner"] or ("user", user.name) in grantees:
        return True
    if user.team is not None and ("team", user.team) in grantees:
        return True
    if template["visibility"] == "public":
        return True
    return (
        template["visibility"] == "team"
        and user.team is not None
        and (user.team == template["team"])
    )


def may_manage(user: Viewer, template: Mapping[str, Any]) -> bool:
    """Whether `user` may publish, roll back, tag, share or change visibility."""
    return user.is_admin or user.name == template["owner"]


def _with_grantees(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> list[dict]:
    from sqlalchemy import select

    found = [dict(r) for r in rows]
    ids = [r["id"] for r in found]
    granted: dict[Any, list[tuple[str, str]]] = {i: [] for i in ids}
    if ids:
        query = select(S.template_id, S.grantee_kind, S.grantee).where(S.template_id.in_(ids))
        for template_id, kind, name in connection.execute(query.order_by(S.grantee)):
            granted[template_id].append((kind, name))
    for row in found:
        row["grantees"] = granted[row["id"]]
    return found


def all_templates(connection: Connection) -> list[dict[str, Any]]:
    """Every template row with its grantees, by name."""
    from sqlalchemy import select

    table = PipelineTemplate.__table__
    rows = connection.execute(select(table).order_by(table.c.name)).mappings()
    return _with_grantees(connection, rows)


def find(connection: Connection, name: str, lock: bool = False) -> dict[str, Any] | None:
    """The template called `name` with its grantees, or None."""
    from sqlalchemy import select

    table = PipelineTemplate.__table__
    query = select(table).where(table.c.name == name)
    if lock:  # serialise writers of one template on PostgreSQL (SQLite: BEGIN IMMEDIATE)
        query = query.with_for_update()
    row = connection.execute(query).mappings().one_or_none()
    return _with_grantees(connection, [row])[0] if row is not None else None


def visible(connection: Connection, user: Viewer, name: str, lock: bool = False) -> dict:
    """The template `name` if `user` may see it.

    Raises:
        LookupError: there is none that `user` can see.
    """
    template = find(connection, name, lock)
    if template is None or not can_see(user, template):
        raise LookupError(f"no pipeline template {name!r} (or you may not see it)")
    return template


def managed(connection: Connection, user: Viewer, name: str, doing: str) -> dict:
    """The template `name` if `user` may change it (row locked for the transaction).

    Raises:
        LookupError: `user` cannot see it. TemplateAccessError: they may see, not change it.
    """
    template = visible(connection, user, name, lock=True)
    if not may_manage(user, template):
        raise TemplateAccessError(
            f"{user.name} may not {doing} template {name!r}: only its owner "
            f"({template['owner']}) or an admin may"
        )
    return template


def guarded(engine: Engine, actor: str, action: str, target: str, change: Callable[[], T]) -> T:
    """Run `change`; when it is refused for lack of rights or by the template's state
    (retired), audit the refusal (after the change's transaction rolled back) and raise it
    again."""

    try:
        return change()
    except (TemplateAccessError, TemplateStateError) as error:
        with engine.begin() as connection:
            append_event(
                connection,
                actor=actor,
                action=f"{action}.refused",
                target=target,
                details={"error": str(error)},
            )
        raise


def resolve_grantee(connection: Connection, grantee: str) -> tuple[str, str]:
    """`user:NAME`, `team:NAME`, or a bare name that is a user or (else) a team.

    Raises:
        LookupError: no such user or team. ValueError: a bare name that is both.
    """
    from sqlalchemy import select

    kind, sep, name = grantee.partition(":")
    if not sep:
        kind, name = "", grantee
    elif kind not in ("user", "team"):
        raise ValueError(f"grantee {grantee!r}: the prefix must be user: or team:")
    name = name.strip()
    is_user = connection.execute(select(User.name).where(User.name == name)).first() is not None
    is_team = connection.execute(select(User.team).where(User.team == name)).first() is not None
    if kind == "user" or (not kind and is_user and not is_team):
        if not is_user:
            raise LookupError(f"no user {name!r} in the users table")
        return "user", name
    if kind == "team" or (not kind and is_team and not is_user):
        if not is_team:
            raise LookupError(f"no team {name!r}: no user in the users table belongs to it")
        return "team", name
    if is_user:
        raise ValueError(f"{name!r} is both a user and a team: write user:{name} or team:{name}")
    raise LookupError(f"{name!r} is neither a user nor a team in the users table")


def refuse_disabled_grantee(connection: Connection, name: str, user: str) -> None:
    """A disabled user may not be given a template: they may no longer act.

    Raises:
        DisabledUserError (a LookupError): `user` is disabled.
    """
    found = find_user(connection, user)
    if found is not None and not found.enabled:
        raise DisabledUserError(
            f"cannot share template {name!r} with {user}: user {user!r} is disabled (an admin "
            f"can enable them with `timbel users enable {user}`)"
        )


def share(engine: Engine, actor: str, name: str, grantee: str) -> dict[str, Any]:
    """Let a user or a team see the template whatever its visibility. A disabled user is
    refused (`refuse_disabled_grantee`); a team is granted whoever of it is disabled, since
    a disabled member sees nothing by their team (`viewer`).

    Returns:
        {"name", "grantee_kind", "grantee", "unchanged"}: unchanged when already shared.
    """

    def change() -> dict[str, Any]:
        from sqlalchemy import insert

        with engine.begin() as connection:
            user = viewer(connection, actor, known=True)
            template = managed(connection, user, name, "share")
            kind, who = resolve_grantee(connection, grantee)
            if kind == "user":
                refuse_disabled_grantee(connection, name, who)
            result = {"name": name, "grantee_kind": kind, "grantee": who}
            if (kind, who) in template["grantees"]:
                return result | {"unchanged": True}
            connection.execute(
                insert(PipelineTemplateShare).values(
                    template_id=template["id"],
                    grantee_kind=kind,
                    grantee=who,
                    granted_by=user.name,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
            append_event(
                connection,
                actor=user.name,
                action="template.share",
                target=f"template {name}",
                details={"grantee_kind": kind, "grantee": who},
            )
            return result | {"unchanged": False}

    return guarded(engine, actor, "template.share", f"template {name}", change)


def set_visibility(
    engine: Engine, actor: str, name: str, visibility: str, team: str | None = None
) -> dict[str, Any]:
    """Make a template private, team-visible (to `team`, default its current team or the
    actor's) or public. Returns {"name", "visibility", "team", "unchanged"}."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility {visibility!r} is not one of {', '.join(VISIBILITIES)}")

    def change() -> dict[str, Any]:
        with engine.begin() as connection:
            user = viewer(connection, actor, known=True)
            template = managed(connection, user, name, "change the visibility of")
            new_team = team or template["team"] or user.team
            if visibility == "team" and not new_team:
                raise ValueError(f"template {name!r} has no team: give one for team visibility")
            result = {"name": name, "visibility": visibility, "team": new_team}
            if (template["visibility"], template["team"]) == (visibility, new_team):
                return result | {"unchanged": True}
            update_visibility(connection, template, visibility, new_team)
            append_event(
                connection,
                actor=user.name,
                action="template.visibility",
                target=f"template {name}",
                details={
                    "from": template["visibility"],
                    "to": visibility,
                    "team": new_team,
                },
            )
            return result | {"unchanged": False}

    return guarded(engine, actor, "template.visibility", f"template {name}", change)


def update_visibility(
    connection: Connection, template: Mapping[str, Any], visibility: str, team: str | None
) -> None:
    """Set a template row's visibility and team (the caller audits it)."""
    from sqlalchemy import update

    connection.execute(
        update(PipelineTemplate)
        .where(PipelineTemplate.id == template["id"])
        .values(visibility=visibility, team=team, updated_at=dt.datetime.now(dt.UTC))
    )
