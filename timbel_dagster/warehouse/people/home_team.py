"""A user's home team (`users.team`) and their membership of it (`team_members`), kept in step.

Approvals and the API read team membership (`team_members`); `users.team` is older: one
team per user, as a directory source sends it and as `timbel users add --team` and the users
file give it. It stays, as the user's home team (the TEAM column of `timbel users list`,
the team a new template belongs to, whom a request's announcement asks first), and Timbel
keeps one rule between the two: a user with a home team is a member of it.

- `timbel users add --team T` and a users file's `team: T` make the user a member of T in
  the same transaction; T must exist (`timbel team add T`): nothing is created implicitly.
- A users file that moves a user from team A to B (or clears `team`) takes them out of A:
  a home team is the one the file says, and a stale membership would still let them approve
  for A's services.
- `timbel team member A USER --remove` of a user whose home team is A clears their home team.
- Other memberships (`timbel team member`) are left alone: a user may be in several teams.

Each membership change appends `team.member.add` / `team.member.remove` (with `via`, the
user change that made it) to the audit log, in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import update

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class UnknownTeamError(ValueError):
    """A user's team names no team of `teams`; nothing changed."""


def require_team(connection: Connection, team: str, user: str, *, bootstrap: bool) -> None:
    """Raise UnknownTeamError unless `team` exists. On the bootstrap (no user yet, so no
    admin to add a team) the message says the order that works."""
    if membership.find_team(connection, team) is not None:
        return
    message = f"no team {team!r} for user {user!r}: add it first with `timbel team add {team}`"
    if bootstrap:
        message += (
            f" (the first admin: add them without --team, then `timbel team add {team} "
            f"--as {user}` and `timbel team member {team} {user} --as {user}`)"
        )
    raise UnknownTeamError(message)


def _audit(connection: Connection, actor: str, action: str, team: str, user: str, via: str):
    append_event(
        connection,
        actor=actor,
        action=action,
        target=f"team {team}",
        details={"user": user, "via": via},
    )


def follow(
    connection: Connection,
    actor: str,
    user: str,
    before: str | None,
    after: str | None,
    *,
    via: str,
) -> list[str]:
    """Make `user`'s memberships follow their home team going from `before` to `after`
    (`after` must exist: `require_team`). Returns what changed, as `+team` / `-team`."""
    changed: list[str] = []
    if (
        before is not None
        and before != after
        and membership.remove_member(connection, before, user)
    ):
        _audit(connection, actor, "team.member.remove", before, user, via)
        changed.append(f"-{before}")
    if after is not None and membership.add_member(connection, after, user):
        _audit(connection, actor, "team.member.add", after, user, via)
        changed.append(f"+{after}")
    return changed


def left_team(connection: Connection, user: str, team: str) -> bool:
    """`user` left `team`: clear their home team if it was `team`. Returns whether it was."""
    result = connection.execute(
        update(User)
        .where(User.name == user, User.team == team)
        .values(team=None, updated_at=dt.datetime.now(dt.UTC))
    )
    return result.rowcount > 0
