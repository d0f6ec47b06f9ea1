"""Who is acting: a known, enabled user with their role, kind, teams and tenants, and how
they proved it (`via`: the CLI's --as/TIMBEL_USER, an API token, OIDC, a page session)."""

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
    person = require_user(connection, name, acting=True)
    kind = connection.execute(select(User.kind).where(User.name == name)).scalar_one()
    return Principal(
        user=person.name,
        role=person.role,
        kind=kind,
        teams=membership.teams_of(connection, name),
        tenants=membership.tenants_of(connection, name),
        via=via,
        token_id=token_id,
    )
