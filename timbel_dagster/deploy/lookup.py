"""Reading deployment requests: who is acting, which request a reference names, its steps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.people.users import UserRefusedError, require_user
from timbel_dagster.warehouse.schema.deploy import ApprovalStep
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class RequestError(ValueError):
    """A request could not be made or decided; nothing changed (the attempt is audited)."""


class ExpiredError(RequestError):
    """The request expired; it is marked expired once the refused change has rolled back."""


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    team: str | None


def actor(connection: Connection, name: str) -> Actor:
    """The acting user, known and enabled (`warehouse.people.users.require_user`).

    Raises:
        RequestError: `name` is not in the users table or is disabled.
    """
    try:
        person = require_user(connection, name, acting=True)
    except UserRefusedError as error:
        raise RequestError(str(error)) from None
    return Actor(person.name, person.role, person.team)


def find(connection: Connection, ref: str) -> dict[str, Any]:
    """A request by number (`42`, `#42`) or by id or id prefix (6+ characters)."""
    from sqlalchemy import String, cast, select

    table = R.__table__
    text = ref.lstrip("#")
    if text.isdigit():
        query = select(table).where(table.c.number == int(text))
    elif len(text) >= 6:
        query = select(table).where(cast(table.c.id, String).like(f"{text.replace('-', '')}%"))
        if connection.dialect.name == "postgresql":
            query = select(table).where(cast(table.c.id, String).like(f"{text}%"))
    else:
        raise RequestError(f"{ref!r} is not a request number or an id prefix (6+ characters)")
    rows = connection.execute(query.limit(2)).mappings().all()
    if not rows:
        raise RequestError(f"no deployment request {ref!r}")
    if len(rows) > 1:
        raise RequestError(f"{ref!r} matches more than one request; give more characters")
    return dict(rows[0])


def steps(connection: Connection, request_id: uuid.UUID) -> list[dict[str, Any]]:
    from sqlalchemy import select

    table = ApprovalStep.__table__
    query = select(table).where(table.c.request_id == request_id).order_by(table.c.position)
    return [dict(r) for r in connection.execute(query).mappings()]
