"""Rows of teams, team members, tenant members and service owners, on the caller's
connection. Who may change them, and the audit events, are in
`timbel_dagster.identity.teams`; the team check of approvals reads `owner_team` and
`teams_of`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, literal, select, union_all, update

from timbel_dagster.warehouse.schema.identity import ServiceOwner, Team, TeamMember, TenantMember

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


# --- reading ------------------------------------------------------------------------------
def find_team(connection: Connection, name: str) -> dict[str, Any] | None:
    row = connection.execute(select(Team.__table__).where(Team.name == name)).mappings().first()
    return dict(row) if row is not None else None


def teams_of(connection: Connection, user: str) -> tuple[str, ...]:
    """The teams `user` is a member of, by name."""
    query = select(TeamMember.team).where(TeamMember.user_name == user).order_by(TeamMember.team)
    return tuple(connection.execute(query).scalars())


def memberships_of(connection: Connection, user: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`user`'s teams and tenants, by name, in one statement (every API request reads them)."""
    query = union_all(
        select(literal("team").label("kind"), TeamMember.team.label("name")).where(
            TeamMember.user_name == user
        ),
        select(literal("tenant").label("kind"), TenantMember.tenant.label("name")).where(
            TenantMember.user_name == user
        ),
    )
    found: dict[str, list[str]] = {"team": [], "tenant": []}
    for kind, name in connection.execute(query):
        found[kind].append(name)
    return tuple(sorted(found["team"])), tuple(sorted(found["tenant"]))


def members_of_tenant(connection: Connection, tenant: str) -> tuple[str, ...]:
    """The users of `tenant`, by name."""
    query = select(TenantMember.user_name).where(TenantMember.tenant == tenant)
    return tuple(connection.execute(query.order_by(TenantMember.user_name)).scalars())


def members_of(connection: Connection, team: str) -> tuple[str, ...]:
    query = select(TeamMember.user_name).where(TeamMember.team == team)
    return tuple(connection.execute(query.order_by(TeamMember.user_name)).scalars())


def owner_team(connection: Connection, service: str) -> str | None:
    """The team that owns `service`, or None when no team does."""
    query = select(ServiceOwner.team).where(ServiceOwner.service == service)
    return connection.execute(query).scalar_one_or_none()


def list_teams(connection: Connection) -> list[dict[str, Any]]:
    """Every team with its members and the services it owns, by name."""
    teams = connection.execute(select(Team.__table__).order_by(Team.name)).mappings().all()
    members: dict[str, list[str]] = {}
    for team, user in connection.execute(
        select(TeamMember.team, TeamMember.user_name).order_by(TeamMember.user_name)
    ):
        members.setdefault(team, []).append(user)
    services: dict[str, list[str]] = {}
    for service, team in connection.execute(
        select(ServiceOwner.service, ServiceOwner.team).order_by(ServiceOwner.service)
    ):
        services.setdefault(team, []).append(service)
    return [
        dict(team) | {"members": members.get(team["name"], []),
                      "services": services.get(team["name"], [])}
        for team in teams
    ]  # fmt: skip


def count_teams(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(Team)).scalar_one()


# --- writing ------------------------------------------------------------------------------
def add_team(connection: Connection, name: str, display_name: str | None, now: dt.datetime) -> bool:
    """Add the team unless it exists; returns whether it was added."""
    if find_team(connection, name) is not None:
        return False
    connection.execute(insert(Team).values(name=name, display_name=display_name, created_at=now))
    return True


def _is_member(connection: Connection, team: str, user: str) -> bool:
    query = select(TeamMember.team).where(TeamMember.team == team, TeamMember.user_name == user)
    return connection.execute(query).first() is not None


def add_member(connection: Connection, team: str, user: str) -> bool:
    """Make `user` a member of `team`; returns whether they were not one already."""
    if _is_member(connection, team, user):
        return False
    connection.execute(insert(TeamMember).values(team=team, user_name=user))
    return True


def remove_member(connection: Connection, team: str, user: str) -> bool:
    """Returns whether `user` was a member of `team`."""
    result = connection.execute(
        delete(TeamMember).where(TeamMember.team == team, TeamMember.user_name == user)
    )
    return result.rowcount > 0


def set_owner(
    connection: Connection, service: str, team: str, tenant: str | None = None
) -> str | None:
    """`team` owns `service` from now on (a service has one owning team). Returns the team
    that owned it before, if any."""
    before = owner_team(connection, service)
    if before is None:
        connection.execute(insert(ServiceOwner).values(service=service, team=team, tenant=tenant))
    else:
        connection.execute(
            update(ServiceOwner)
            .where(ServiceOwner.service == service)
            .values(team=team, tenant=tenant)
        )
    return before


def set_tenant_members(connection: Connection, tenant: str, users: Iterable[str]) -> None:
    """The members of `tenant` are exactly `users`."""
    connection.execute(delete(TenantMember).where(TenantMember.tenant == tenant))
    rows = [{"tenant": tenant, "user_name": user} for user in sorted(set(users))]
    if rows:
        connection.execute(insert(TenantMember), rows)
