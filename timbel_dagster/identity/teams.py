"""Teams, their members, and which team owns a service: managed by admins, each change
audited (`team.add`, `team.member.add`, `team.member.remove`, `team.own`, and `.refused`).

The team check of approvals (`deploy/requests.py`) reads what these write: a team lead
approves only for the services their team owns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, or_, select

from timbel_dagster.identity.authorize import require
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people import home_team, membership
from timbel_dagster.warehouse.people.user_admin import audited_change
from timbel_dagster.warehouse.people.users import find_user, require_user
from timbel_dagster.warehouse.schema.models import Deployment, Pipeline

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

NAME_LENGTH = 128


class TeamError(ValueError):
    """A team change was refused; nothing changed (the attempt is audited)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _authorize(connection: Connection, actor: str) -> None:
    require(load_principal(connection, actor), "identity.teams")


def _existing(connection: Connection, team: str) -> dict[str, Any]:
    found = membership.find_team(connection, team)
    if found is None:
        raise TeamError(f"no team {team!r}: add it with `timbel team add {team}`")
    return found


def check_name(name: str) -> str:
    if not name or name != name.strip() or any(c.isspace() for c in name):
        raise TeamError(f"a team name must be one word without white space, not {name!r}")
    if len(name) > NAME_LENGTH:
        raise TeamError(f"a team name is at most {NAME_LENGTH} characters")
    return name


def known_service(connection: Connection, service: str) -> bool:
    """Whether Timbel knows `service`: a pipeline builds it or a deployment shipped it."""
    query = select(
        or_(
            exists().where(Pipeline.service == service),
            exists().where(Deployment.service == service),
        )
    )
    return bool(connection.execute(query).scalar())


def add_team(
    engine: Engine,
    actor: str,
    name: str,
    display_name: str | None = None,
    clock: Callable[[], dt.datetime] = _now,
) -> dict[str, Any]:
    """Add team `name` (audited as `team.add`)."""

    def change() -> dict[str, Any]:
        check_name(name)
        with engine.begin() as connection:
            _authorize(connection, actor)
            if not membership.add_team(connection, name, display_name, clock()):
                raise TeamError(f"team {name!r} exists: see `timbel team list`")
            append_event(connection, actor=actor, action="team.add", target=f"team {name}",
                         details={"display_name": display_name})  # fmt: skip
            return _existing(connection, name)

    return audited_change(engine, actor, "team.add", f"team {name}", change)


def set_member(
    engine: Engine, actor: str, team: str, user: str, *, remove: bool = False
) -> dict[str, Any]:
    """Add `user` to `team` (or remove them), audited as `team.member.add` / `.remove`.
    Removing a user from their home team (`users.team`) clears it too
    (`warehouse/people/home_team.py`), said in the audit event as `home_team_cleared`.

    Returns:
        {"team", "user", "removed": bool, "unchanged": bool, "members": [...],
        "home_team_cleared": bool}
    """
    action = "team.member.remove" if remove else "team.member.add"

    def change() -> dict[str, Any]:
        with engine.begin() as connection:
            _authorize(connection, actor)
            _existing(connection, team)
            if remove:
                if find_user(connection, user) is None:  # a disabled user may leave a team
                    require_user(connection, user)  # raises with the usual message
                changed = membership.remove_member(connection, team, user)
                cleared = home_team.left_team(connection, user, team)
            else:
                require_user(connection, user)
                changed, cleared = membership.add_member(connection, team, user), False
            if changed or cleared:
                details = {"user": user} | ({"home_team_cleared": True} if cleared else {})
                append_event(connection, actor=actor, action=action, target=f"team {team}",
                             details=details)  # fmt: skip
            members = list(membership.members_of(connection, team))
        return {"team": team, "user": user, "removed": remove,
                "unchanged": not (changed or cleared), "members": members,
                "home_team_cleared": cleared}  # fmt: skip

    return audited_change(engine, actor, action, f"team {team}", change)


def own(
    engine: Engine, actor: str, service: str, team: str, tenant: str | None = None
) -> dict[str, Any]:
    """`team` owns `service` from now on (audited as `team.own`, with the previous owner).

    Returns:
        {"service", "team", "from": previous team or None, "unchanged": bool}
    """

    def change() -> dict[str, Any]:
        with engine.begin() as connection:
            _authorize(connection, actor)
            _existing(connection, team)
            if not known_service(connection, service):
                raise TeamError(
                    f"no service {service!r} is known (no pipeline builds it and no deployment "
                    "shipped it): see `timbel executions list`"
                )
            before = membership.owner_team(connection, service)
            if before != team:
                membership.set_owner(connection, service, team, tenant)
                append_event(
                    connection,
                    actor=actor,
                    action="team.own",
                    target=f"service {service}",
                    details={"team": team, "from": before},
                )
        return {"service": service, "team": team, "from": before, "unchanged": before == team}

    return audited_change(engine, actor, "team.own", f"service {service}", change)


def list_teams(connection: Connection) -> list[dict[str, Any]]:
    """Every team with its members and services (anyone may read them)."""
    return membership.list_teams(connection)
