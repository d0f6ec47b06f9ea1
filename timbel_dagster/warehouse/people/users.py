"""The people Timbel knows (`users`): who may act, and managing them without SQL.

`require_users` is the one check every action makes of the people it names (the acting user
of a deployment request, a template change, a tenant, ...): unknown and disabled users are
refused with one message. The writes (`add_user`, `set_role`, `set_disabled`,
`import_users`) are in `user_admin`: for admins, except that anyone may add the first user of
an empty table so a fresh install can bootstrap; each change is audited.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select

from timbel_dagster.warehouse.schema.identity import TeamMember
from timbel_dagster.warehouse.schema.models import USER_KINDS, USER_ROLES, User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

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
