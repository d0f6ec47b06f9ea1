"""The people Timbel knows (`users`): who may act, and managing them without SQL.

`require_users` is the one check every action makes of the people it names (the acting user
of a deployment request, a template change, a tenant, ...): unknown and disabled users are
refused with one message. The writes (`add_user`, `set_role`, `set_disabled`,
`import_users`) are for admins, except that anyone may add the first user of an empty table
so a fresh install can bootstrap; each change appends its audit event in the same
transaction, and a refused attempt is audited as `<action>.refused`.

A user is a person or a service account (`kind`). Both live in this one table and are
managed by the same commands (`timbel users add NAME --role ROLE --service`; list, set-role,
disable and import work on both), so a role, a team, disabling and the audit trail mean the
same for either. A service account acts only through its API tokens: it needs no e-mail or
Slack id, OIDC never signs it in (`identity/oidc.py`), and it does not count as the admin
that must remain, since it cannot sign in to manage users.

A user's `team` is their home team; adding or importing a user with a team makes them a
member of it in the same transaction (`home_team`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, insert, or_, select, update

from timbel_dagster.warehouse.audit.chain import append_event, lock_chain
from timbel_dagster.warehouse.people import home_team
from timbel_dagster.warehouse.schema.identity import TeamMember
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import USER_KINDS, USER_ROLES, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")
ADMIN = "admin"
PERSON, SERVICE = USER_KINDS
SOURCE = "timbel"  # rows added by `timbel users`, not ingested from a directory source
# The optional fields of a user and their column widths.
OPTIONAL = {"display_name": 256, "email": 320, "team": 128, "slack_id": 64}
NAME_LENGTH = 128


class UserRefusedError(LookupError):
    """A user named for an action is not in the users table, or is disabled."""


class UnknownUserError(UserRefusedError):
    """No row of `users` has that name."""


class DisabledUserError(UserRefusedError):
    """The user exists but was disabled."""


class UserAdminError(ValueError):
    """A change to the users table was refused; nothing changed (the attempt is audited)."""


@dataclass(frozen=True)
class Person:
    """One row of `users`."""

    name: str
    role: str
    team: str | None = None
    display_name: str | None = None
    email: str | None = None
    slack_id: str | None = None
    source: str = SOURCE
    disabled_at: dt.datetime | None = None
    kind: str = PERSON

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "enabled": self.enabled}


@dataclass(frozen=True)
class UserEntry:
    """A user to add or update: `values` holds the optional fields given (None clears one);
    a field not given is left as it is. `kind` None: a person when added, else as stored."""

    name: str
    role: str
    values: Mapping[str, str | None] = field(default_factory=dict)
    kind: str | None = None


_COLUMNS = (
    User.name,
    User.role,
    User.team,
    User.display_name,
    User.email,
    User.slack_id,
    User.source,
    User.disabled_at,
    User.kind,
)


def _unknown(names: Sequence[str], acting: bool) -> str:
    if len(names) == 1:
        message = (
            f"user {names[0]!r} is not in the users table: add them with "
            f"`timbel users add {names[0]} --role ROLE`"
        )
    else:
        quoted = ", ".join(repr(n) for n in names)
        message = (
            f"users {quoted} are not in the users table: add them with "
            "`timbel users add NAME --role ROLE`"
        )
    if acting:
        message += ", or act as a known user with --as or TIMBEL_USER (`timbel users list`)"
    return message


def _disabled(names: Sequence[str]) -> str:
    if len(names) == 1:
        return (
            f"user {names[0]!r} is disabled: an admin can enable them with "
            f"`timbel users enable {names[0]}`"
        )
    quoted = ", ".join(repr(n) for n in names)
    return f"users {quoted} are disabled: an admin can enable them with `timbel users enable`"


def find_user(connection: Connection, name: str) -> Person | None:
    """The user `name`, enabled or not, or None."""
    row = connection.execute(select(*_COLUMNS).where(User.name == name)).one_or_none()
    return Person(*row) if row is not None else None


def require_users(
    connection: Connection, names: Iterable[str], *, acting: bool = False
) -> list[Person]:
    """The users `names`, each known and enabled, in the order given.

    Args:
        acting: the names are of who acts (`--as`/TIMBEL_USER): the message says how to act
            as someone else.

    Raises:
        UnknownUserError: some are not in the users table (all of them are named).
        DisabledUserError: all are known, some are disabled.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    rows = connection.execute(select(*_COLUMNS).where(User.name.in_(wanted))).all()
    found = {row.name: Person(*row) for row in rows}
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise UnknownUserError(_unknown(sorted(unknown), acting))
    disabled = sorted(n for n in wanted if not found[n].enabled)
    if disabled:
        raise DisabledUserError(_disabled(disabled))
    return [found[n] for n in wanted]


def require_user(connection: Connection, name: str, *, acting: bool = False) -> Person:
    """The user `name`, known and enabled (see `require_users`)."""
    return require_users(connection, [name], acting=acting)[0]


def list_users(
    connection: Connection,
    role: str | None = None,
    team: str | None = None,
    include_disabled: bool = False,
    kind: str | None = None,
) -> list[Person]:
    """Users by name, enabled only unless `include_disabled`, filtered by role, team (its
    members, and the users whose home team it is: a directory source sets the home team
    without a membership) and kind (person or service)."""
    if role is not None:
        check_role(role)
    if kind is not None:
        check_kind(kind)
    query = select(*_COLUMNS).order_by(User.name)
    if role is not None:
        query = query.where(User.role == role)
    if kind is not None:
        query = query.where(User.kind == kind)
    if team is not None:
        members = select(TeamMember.user_name).where(TeamMember.team == team)
        query = query.where(or_(User.team == team, User.name.in_(members)))
    if not include_disabled:
        query = query.where(User.disabled_at.is_(None))
    return [Person(*row) for row in connection.execute(query)]


def count_users(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(User)).scalar_one()


# --- checking input ---------------------------------------------------------------------------
def check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(USER_ROLES)}")
    return role


def check_kind(kind: str) -> str:
    if kind not in USER_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(USER_KINDS)}")
    return kind


def entry_problems(
    name: Any, role: Any, values: Mapping[str, Any], kind: Any = None
) -> list[tuple[str, str]]:
    """What is wrong with a user's fields, as (field, problem) pairs; [] when nothing is."""
    problems: list[tuple[str, str]] = []
    if name is None or (isinstance(name, str) and not name.strip()):
        problems.append(("name", "is required"))
    elif not isinstance(name, str):
        problems.append(("name", f"must be text, not {type(name).__name__}"))
    elif name != name.strip() or any(c.isspace() for c in name):
        problems.append(("name", f"must have no white space, not {name!r}"))
    elif len(name) > NAME_LENGTH:
        problems.append(("name", f"is longer than {NAME_LENGTH} characters"))
    if role is None:
        problems.append(("role", f"is required: one of {', '.join(USER_ROLES)}"))
    elif role not in USER_ROLES:
        problems.append(("role", f"must be one of {', '.join(USER_ROLES)}, not {role!r}"))
    if kind is not None and kind not in USER_KINDS:
        problems.append(("kind", f"must be one of {', '.join(USER_KINDS)}, not {kind!r}"))
    for key, value in values.items():
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append((key, f"must be text, not {type(value).__name__}"))
        elif len(value) > OPTIONAL[key]:
            problems.append((key, f"is longer than {OPTIONAL[key]} characters"))
        elif key == "email" and ("@" not in value or any(c.isspace() for c in value)):
            problems.append((key, f"must be an e-mail address, not {value!r}"))
    return problems


def entry(
    name: str,
    role: str,
    *,
    team: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
    slack_id: str | None = None,
    kind: str = PERSON,
) -> UserEntry:
    """A checked entry from command-line values (the fields not given are left out).

    Raises:
        ValueError: naming the first field that is wrong.
    """
    given = {"team": team, "email": email, "display_name": display_name, "slack_id": slack_id}
    values = {k: v for k, v in given.items() if v is not None}
    problems = entry_problems(name, role, values, kind)
    if problems:
        key, problem = problems[0]
        raise ValueError(f"{'--' + key.replace('_', '-') if key in values else key} {problem}")
    return UserEntry(name, role, values, kind)


# --- changing -----------------------------------------------------------------------------------
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
