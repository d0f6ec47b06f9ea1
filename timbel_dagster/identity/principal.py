"""Who is acting: a known, enabled user with their role, kind, teams and tenants, and how
they proved it (`via`: the CLI's --as/TIMBEL_USER, an API token, OIDC, a page session).

Every API request loads its principal, so loading is two statements: the user's row and
their memberships (teams and tenants in one UNION ALL). A token is found together with its
user's row (`tokens.verify_token`), which leaves the memberships as the only second read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.people.users import require_user
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

VIA = ("cli", "token", "oidc", "session")


@dataclass(frozen=True)
class Principal:
    user: str
    role: str
    kind: str = "person"  # person | service
    teams: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    via: str = "cli"
    token_id: uuid.UUID | None = None


def load_principal(
    connection: Connection, name: str, *, via: str = "cli", token_id: uuid.UUID | None = None
) -> Principal:
    """The principal of user `name`, who must be known and enabled.

    Raises:
        UserRefusedError: `name` is not in the users table, or is disabled (the message says
            how to act as someone else).
    """
    row = connection.execute(
        select(User.role, User.kind, User.disabled_at).where(User.name == name)
    ).one_or_none()
    if row is None or row.disabled_at is not None:
        require_user(connection, name, acting=True)  # raises with the users' own message
    assert row is not None  # for mypy: require_user raised otherwise
    return principal_of(connection, name, row.role, row.kind, via=via, token_id=token_id)


def principal_of(
    connection: Connection,
    name: str,
    role: str,
    kind: str,
    *,
    via: str,
    token_id: uuid.UUID | None = None,
) -> Principal:
    """The principal of an enabled user whose row the caller has read (with a token, in the
    same statement): only the memberships are read here."""
    teams, tenants = membership.memberships_of(connection, name)
    return Principal(
        user=name, role=role, kind=kind, teams=teams, tenants=tenants, via=via, token_id=token_id
    )
