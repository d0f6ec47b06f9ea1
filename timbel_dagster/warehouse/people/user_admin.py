"""Changing the people Timbel knows, without SQL: `add_user`, `set_role`, `set_disabled`
and `import_users` (the reading side and the checks of input are in `users`).

The writes are for admins, except that anyone may add the first user of an empty table so a
fresh install can bootstrap; one enabled admin who is a person must always remain. Each
change appends its audit event in the same transaction, and a refused attempt is audited as
`<action>.refused` (`audited_change`, which the changes to teams and tokens use too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, insert, select, update

from timbel_dagster.warehouse.audit.chain import append_event, lock_chain
from timbel_dagster.warehouse.people import home_team
from timbel_dagster.warehouse.people.users import (
    ADMIN,
    OPTIONAL,
    PERSON,
    SOURCE,
    Person,
    UserAdminError,
    UserEntry,
    UserRefusedError,
    check_role,
    count_users,
    find_user,
    require_user,
)
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


def _enabled_admins(connection: Connection) -> int:
    """Enabled admins who are people: a service account cannot sign in to manage users."""
    query = select(func.count()).where(
        User.role == ADMIN, User.disabled_at.is_(None), User.kind == PERSON
    )
    return connection.execute(query).scalar_one()


def _authorize(connection: Connection, actor: str, adding: bool) -> bool:
    """Check that `actor` may manage users; returns whether this is the bootstrap (the
    table is empty and the change adds the first users, which anyone may do)."""
    lock_chain(connection)  # one user change at a time (PostgreSQL; SQLite: BEGIN IMMEDIATE)
    if adding and count_users(connection) == 0:
        return True
    person = require_user(connection, actor, acting=True)
    if person.role != ADMIN:
        raise UserAdminError(
            f"{actor} may not manage users: only an admin may (their role is {person.role})"
        )
    return False


def _keep_an_admin(connection: Connection, bootstrap: bool) -> None:
    if _enabled_admins(connection) == 0:
        if bootstrap:
            raise UserAdminError(
                "the users table is empty: the first user must be an admin (--role admin) "
                "and a person (not --service), so that someone may add the others"
            )
        raise UserAdminError(
            "that would leave no enabled admin (a person: service accounts do not count), and "
            "only an admin may manage users: make another user admin first "
            "(`timbel users set-role NAME admin`)"
        )


def audited_change(
    engine: Engine, actor: str, action: str, target: str, change: Callable[[], T]
) -> T:
    """Run `change`; when it is refused (a ValueError, such as UserAdminError, or an unknown
    or disabled actor), audit the refusal as `<action>.refused` after its transaction rolled
    back, and raise it again. Every change to people, teams and tokens goes through it."""
    try:
        return change()
    except (ValueError, UserRefusedError) as error:
        with engine.begin() as connection:
            append_event(
                connection,
                actor=actor[:256],
                action=f"{action}.refused",
                target=target[:512],
                details={"error": str(error), "error_type": type(error).__name__},
            )
        raise


def _insert(connection: Connection, item: UserEntry, now: dt.datetime) -> None:
    values = dict.fromkeys(OPTIONAL) | dict(item.values)
    connection.execute(
        insert(User).values(
            id=stable_id("users", item.name),
            source=SOURCE,
            name=item.name,
            role=item.role,
            kind=item.kind or PERSON,
            created_at=now,
            updated_at=now,
            **values,
        )
    )


def _changes(old: Person, item: UserEntry) -> dict[str, Any]:
    wanted = {"role": item.role, **item.values}
    if item.kind is not None:
        wanted["kind"] = item.kind
    return {k: v for k, v in wanted.items() if getattr(old, k) != v}


def _details(item: UserEntry) -> dict[str, Any]:
    """What the audit event of an added user says: role, kind and the fields given."""
    return {"role": item.role, "kind": item.kind or PERSON, **item.values}


def _update(connection: Connection, name: str, values: Mapping[str, Any]) -> None:
    now = dt.datetime.now(dt.UTC)
    connection.execute(update(User).where(User.name == name).values(**values, updated_at=now))


def _audit(connection: Connection, actor: str, action: str, name: str, details: dict) -> None:
    append_event(connection, actor=actor, action=action, target=f"user {name}", details=details)


def add_user(engine: Engine, actor: str, item: UserEntry) -> dict[str, Any]:
    """Add a user (audited as `user.add`) and, with a team, make them a member of it
    (audited as `team.member.add`), in one transaction.

    Returns:
        {"user": {...}, "bootstrap": bool, "teams": ["+team"] when a membership was added}

    Raises:
        UserAdminError: `actor` is not an admin (unless the table is empty), or the user
            exists.
        UnknownTeamError: the team does not exist (`timbel team add`).
    """

    def change() -> dict[str, Any]:
        with engine.begin() as connection:
            bootstrap = _authorize(connection, actor, adding=True)
            if find_user(connection, item.name) is not None:
                raise UserAdminError(
                    f"user {item.name!r} already exists: see `timbel users list --all`; "
                    f"change their role with `timbel users set-role {item.name} ROLE`"
                )
            team = item.values.get("team")
            if team is not None:
                home_team.require_team(connection, team, item.name, bootstrap=bootstrap)
            _insert(connection, item, dt.datetime.now(dt.UTC))
            _keep_an_admin(connection, bootstrap)
            details = _details(item) | {"bootstrap": bootstrap}
            _audit(connection, actor, "user.add", item.name, details)
            teams = home_team.follow(connection, actor, item.name, None, team, via="user.add")
            person = find_user(connection, item.name)
        return {
            "user": person.as_dict() if person else None,
            "bootstrap": bootstrap,
            "teams": teams,
        }

    return audited_change(engine, actor, "user.add", f"user {item.name}", change)


def _existing(connection: Connection, name: str) -> Person:
    person = find_user(connection, name)
    if person is None:
        raise UserAdminError(f"no user {name!r}: see `timbel users list --all`")
    return person


def set_role(engine: Engine, actor: str, name: str, role: str) -> dict[str, Any]:
    """Give `name` the role `role` (audited as `user.set_role`).

    Returns:
        {"user": {...}, "from": old role, "unchanged": bool}
    """

    def change() -> dict[str, Any]:
        check_role(role)
        with engine.begin() as connection:
            _authorize(connection, actor, adding=False)
            old = _existing(connection, name)
            if old.role != role:
                _update(connection, name, {"role": role})
                _keep_an_admin(connection, False)
                _audit(connection, actor, "user.set_role", name, {"from": old.role, "to": role})
            person = _existing(connection, name)
        return {"user": person.as_dict(), "from": old.role, "unchanged": old.role == role}

    return audited_change(engine, actor, "user.set_role", f"user {name}", change)


def set_disabled(engine: Engine, actor: str, name: str, disabled: bool) -> dict[str, Any]:
    """Disable (or enable again) `name`, audited as `user.disable` / `user.enable`; a
    disabled user stays in the table but may not act.

    Returns:
        {"user": {...}, "unchanged": bool}
    """
    action = "user.disable" if disabled else "user.enable"

    def change() -> dict[str, Any]:
        with engine.begin() as connection:
            _authorize(connection, actor, adding=False)
            old = _existing(connection, name)
            unchanged = old.enabled != disabled
            if not unchanged:
                when = dt.datetime.now(dt.UTC) if disabled else None
                _update(connection, name, {"disabled_at": when})
                _keep_an_admin(connection, False)
                _audit(connection, actor, action, name, {"role": old.role})
            person = _existing(connection, name)
        return {"user": person.as_dict(), "unchanged": unchanged}

    return audited_change(engine, actor, action, f"user {name}", change)


class _DryRun(Exception):
    """Rolls a dry run's transaction back, carrying what it would have done."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.result = result


def import_users(
    engine: Engine, actor: str, entries: Sequence[UserEntry], origin: str, dry_run: bool = False
) -> dict[str, Any]:
    """Add or update every entry in one transaction (audited per user as `user.add` or
    `user.update`, with the file); a dry run checks and reports, then rolls back.

    An entry with `team` makes the user a member of that team (which must exist), and one
    that moves them to another team, or clears it, takes them out of the old one
    (`home_team.follow`, audited as `team.member.add` / `.remove`); a membership that was
    missing counts as an update of `team_members`.

    Returns:
        {"file", "dry_run", "bootstrap", "added": [names], "updated": {name: [fields]},
        "unchanged": [names], "teams": {name: ["+team", "-team"]}}
    """

    def apply(connection: Connection) -> dict[str, Any]:
        bootstrap = _authorize(connection, actor, adding=True)
        added: list[str] = []
        updated: dict[str, list[str]] = {}
        unchanged: list[str] = []
        teams: dict[str, list[str]] = {}
        now = dt.datetime.now(dt.UTC)
        for item in entries:  # every team exists, before anything is written
            if (team := item.values.get("team")) is not None:
                home_team.require_team(connection, team, item.name, bootstrap=bootstrap)
        for item in entries:
            old = find_user(connection, item.name)
            via = {"file": origin, "bootstrap": bootstrap}
            if old is None:
                _insert(connection, item, now)
                _audit(connection, actor, "user.add", item.name, via | _details(item))
                added.append(item.name)
            elif changes := _changes(old, item):
                _update(connection, item.name, changes)
                _audit(connection, actor, "user.update", item.name, via | {"changes": changes})
                updated[item.name] = sorted(changes)
            if "team" in item.values:
                before = old.team if old is not None else None
                action = "user.add" if old is None else "user.update"
                moved = home_team.follow(
                    connection, actor, item.name, before, item.values["team"], via=action
                )
                if moved:
                    teams[item.name] = moved
                    if old is not None and item.name not in updated:
                        updated[item.name] = ["team_members"]
            if old is not None and item.name not in updated:
                unchanged.append(item.name)
        _keep_an_admin(connection, bootstrap)
        return {
            "file": origin,
            "dry_run": dry_run,
            "bootstrap": bootstrap,
            "added": added,
            "updated": updated,
            "unchanged": unchanged,
            "teams": teams,
        }

    def change() -> dict[str, Any]:
        try:
            with engine.begin() as connection:
                result = apply(connection)
                if dry_run:
                    raise _DryRun(result)
        except _DryRun as rolled_back:
            return rolled_back.result
        return result

    return audited_change(engine, actor, "user.import", f"users file {origin}", change)
