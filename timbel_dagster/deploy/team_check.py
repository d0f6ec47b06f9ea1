"""The team check of approvals: a team lead decides only for the services their team owns
(`timbel team own`); operations and admins act for every team. A service no team owns has
its team lead step refused, with the command that fixes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timbel_dagster.deploy.lookup import Actor, NotPermittedError
from timbel_dagster.warehouse.people import membership

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

TEAM_LEAD = "team_lead"


def check_team(connection: Connection, actor: Actor, request: dict[str, Any], what: str) -> None:
    """Refuse a team lead who is not in the team that owns the request's service.

    Args:
        what: what needs the team lead, for the message ("step 1 of request #4").

    Raises:
        NotPermittedError: no team owns the service, or the actor is not in the owning team.
    """
    if actor.role != TEAM_LEAD:
        return
    service = request["service"]
    owner = membership.owner_team(connection, service)
    if owner is None:
        raise NotPermittedError(
            f"{what} needs a team lead of the team that owns {service}, and no team owns it: "
            f"an admin can set it with `timbel team own {service} --team TEAM`"
        )
    teams = membership.teams_of(connection, actor.name)
    if owner not in teams:
        where = f"is in {', '.join(teams)}" if teams else "is in no team"
        raise NotPermittedError(
            f"{what} needs a team lead of team {owner}, which owns {service}; {actor.name} "
            f"{where} (`timbel team member {owner} {actor.name}` adds them)"
        )
