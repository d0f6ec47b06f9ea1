"""Reading deployment requests: who is acting, which request a reference names, its steps."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.people.users import UserRefusedError, require_user
from timbel_dagster.warehouse.schema.deploy import REQUEST_STATUSES, ApprovalStep
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R
from timbel_dagster.warehouse.schema.identity import ServiceOwner
from timbel_dagster.warehouse.schema.ids import integer_key, is_number

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class RequestError(ValueError):
    """A request could not be made or decided; nothing changed (the attempt is audited)."""


class NotPermittedError(RequestError):
    """The actor may not take this decision: their role, their team, or separation of duties
    (the API answers 403, not 409)."""


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
    if is_number(text):
        number = integer_key(text)
        if number is None:  # more than any request number can be
            raise RequestError(f"no deployment request {ref!r}")
        query = select(table).where(table.c.number == number)
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


def as_of(request: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The request as it stands at `now`: a pending one past its expiry is expired (since
    its `expires_at`). Reads show it so without writing; `expire_requests` records it
    (audited), from `request_expiry_sensor` and the CLI."""
    expires = request.get("expires_at")
    if request.get("status") == "pending" and expires is not None and expires <= now:
        return request | {"status": "expired", "decided_at": expires}
    return request


def list_requests(
    connection: Connection,
    state: str | None = None,
    limit: int = 20,
    *,
    before: int | None = None,
    tenants: tuple[str, ...] | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The newest requests first (by number), at most `limit`, as they stand at `now`
    (`as_of`; default: the current time).

    Args:
        state: only requests in this status (at `now`: a pending request past its expiry is
            listed as expired).
        before: only requests numbered below it (the position after a page's last row).
        tenants: only requests for services of these tenants, and of services with no
            tenant; None: every request.

    Raises:
        RequestError: `state` is not a request status.
    """
    from sqlalchemy import and_, or_, select

    if state and state not in REQUEST_STATUSES:
        raise RequestError(f"--status {state!r} is not one of {', '.join(REQUEST_STATUSES)}")
    now = now or dt.datetime.now(dt.UTC)
    query = select(R.__table__).order_by(R.number.desc()).limit(limit)
    overdue = and_(R.status == "pending", R.expires_at <= now)
    if state == "pending":
        query = query.where(R.status == "pending", R.expires_at > now)
    elif state == "expired":
        query = query.where(or_(R.status == "expired", overdue))
    elif state:
        query = query.where(R.status == state)
    if before is not None:
        query = query.where(R.number < before)
    if tenants is not None:
        query = query.outerjoin(ServiceOwner, ServiceOwner.service == R.service).where(
            or_(ServiceOwner.tenant.is_(None), ServiceOwner.tenant.in_(tenants))
        )
    return [as_of(dict(r), now) for r in connection.execute(query).mappings()]


def tenant_of(connection: Connection, service: str) -> str | None:
    """The tenant `service` runs in (`service_owners.tenant`), or None."""
    from sqlalchemy import select

    query = select(ServiceOwner.tenant).where(ServiceOwner.service == service)
    return connection.execute(query).scalar_one_or_none()
