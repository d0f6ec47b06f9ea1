"""Rows of `api_tokens`: insert, find (by the secret's hash, by id or prefix), list, mark
used, revoke. The rules (who may, what the secret looks like, what counts as expired) are in
`timbel_dagster.identity.tokens`; these functions run on the caller's connection.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, insert, or_, select, update

from timbel_dagster.warehouse.schema.identity import ApiToken
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class TokenRow:
    """One row of `api_tokens`, without the secret's hash."""

    id: uuid.UUID
    user_name: str
    label: str
    prefix: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    revoked_by: str | None
    last_used_at: dt.datetime | None
    last_used_ip: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": str(self.id)}


_COLUMNS = (
    ApiToken.id,
    ApiToken.user_name,
    ApiToken.label,
    ApiToken.prefix,
    ApiToken.created_at,
    ApiToken.created_by,
    ApiToken.expires_at,
    ApiToken.revoked_at,
    ApiToken.revoked_by,
    ApiToken.last_used_at,
    ApiToken.last_used_ip,
)


def insert_token(connection: Connection, row: TokenRow, secret_sha256: str) -> None:
    connection.execute(insert(ApiToken).values(**asdict(row), secret_sha256=secret_sha256))


@dataclass(frozen=True)
class Holder:
    """What the token check needs of the token's user, read with the token (None: the user
    row is gone)."""

    role: str
    kind: str
    disabled_at: dt.datetime | None


def find_with_holder(
    connection: Connection, *, secret_sha256: str | None = None, token_id: uuid.UUID | None = None
) -> tuple[TokenRow | None, Holder | None]:
    """The token found by its secret's hash or its id, and its user's row, in one statement:
    checking a token is on the path of every API request."""
    query = select(*_COLUMNS, User.role, User.kind, User.disabled_at).outerjoin(
        User, User.name == ApiToken.user_name
    )
    if secret_sha256 is not None:
        query = query.where(ApiToken.secret_sha256 == secret_sha256)
    elif token_id is not None:
        query = query.where(ApiToken.id == token_id)
    else:
        raise ValueError("find_with_holder needs secret_sha256 or token_id")
    row = connection.execute(query).one_or_none()
    if row is None:
        return None, None
    token = TokenRow(*row[: len(_COLUMNS)])
    role, kind, disabled_at = row[len(_COLUMNS) :]
    return token, (Holder(role, kind, disabled_at) if role is not None else None)


def find_by_ref(connection: Connection, ref: str) -> list[TokenRow]:
    """The tokens `ref` names: its prefix (`tbl_3kF9x2Qa`), or its id or the id's first
    characters (6 or more)."""
    ref = ref.strip()
    matches = [ApiToken.prefix == ref]
    if len(ref) >= 6:
        # SQLite stores a UUID as 32 hex digits, PostgreSQL prints it with dashes.
        text = (
            ref.lower() if connection.dialect.name == "postgresql" else ref.lower().replace("-", "")
        )
        matches.append(cast(ApiToken.id, String).like(f"{text}%"))
    query = select(*_COLUMNS).where(or_(*matches)).order_by(ApiToken.created_at)
    return [TokenRow(*row) for row in connection.execute(query)]


def list_tokens(connection: Connection, user: str | None = None) -> list[TokenRow]:
    """Tokens, newest first; only `user`'s when given."""
    query = select(*_COLUMNS).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_name == user)
    return [TokenRow(*row) for row in connection.execute(query)]


def touch(
    connection: Connection,
    token_id: uuid.UUID,
    now: dt.datetime,
    ip: str | None,
    every: dt.timedelta,
) -> bool:
    """Record a use, unless one was recorded less than `every` ago (so a busy token does not
    write on every request). Returns whether the row changed."""
    result = connection.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - every))
        .values(last_used_at=now, last_used_ip=ip[:64] if ip else None)
    )
    return result.rowcount > 0


def mark_revoked(connection: Connection, token_id: uuid.UUID, now: dt.datetime, by: str) -> None:
    connection.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by)
    )
