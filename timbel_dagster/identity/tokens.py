"""API tokens: created for a user and shown once, verified by the SHA-256 of the secret,
revoked by id or prefix.

The secret is `tbl_` + 32 random bytes (URL-safe base64, 256 bits). Only its SHA-256 is
stored, with its first 12 characters as the `prefix` lists show. A fast hash is right for a
high-entropy machine secret (slow hashes exist to protect guessable passwords), and a token
is found by equality on the unique hash, so no comparison leaks the secret's bits.

Creating and revoking are audited (`token.create`, `token.revoke`, and `.refused`); the
details never hold the secret. A token stops working when it expires, is revoked, or its
user is disabled; each refusal says which.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timbel_dagster.identity.authorize import NotAllowedError, Target, require
from timbel_dagster.identity.principal import Principal, load_principal, principal_of
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people import tokens as rows
from timbel_dagster.warehouse.people.user_admin import audited_change
from timbel_dagster.warehouse.people.users import require_user
from timbel_dagster.warehouse.schema.identity import TOKEN_PREFIX_LENGTH

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

SECRET_PREFIX = "tbl_"
SECRET_BYTES = 32
# A busy token records its use at most once a minute, not on every request.
USE_RECORDED_EVERY = dt.timedelta(minutes=1)
DEFAULT_EXPIRY = "90d"
LABEL_LENGTH = 128
_DURATION = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class TokenError(ValueError):
    """A token could not be created or revoked; nothing changed."""


class TokenRefusedError(LookupError):
    """A secret that does not let anyone in. `reason` says why, as one word: unknown,
    revoked, expired, user_disabled."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_expiry(text: str | None) -> dt.timedelta | None:
    """`30d`, `12h`, `2w`, or `never` (None). Raises TokenError for anything else."""
    value = (text or DEFAULT_EXPIRY).strip().lower()
    if value == "never":
        return None
    match = _DURATION.match(value)
    if not match or int(match.group(1)) == 0:
        raise TokenError(
            f"--expires {text!r} is not a duration: give hours, days or weeks "
            "(12h, 30d, 2w) or `never`"
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _principal(connection: Connection, actor: str) -> Principal:
    return load_principal(connection, actor)


def _may_manage(principal: Principal, owner: str) -> None:
    action = "identity.tokens.own" if principal.user == owner else "identity.tokens.any"
    try:
        require(principal, action, Target(owner=owner))
    except NotAllowedError as error:
        raise NotAllowedError(
            f"{principal.user} may not manage {owner}'s tokens: only an admin may ({error})"
        ) from None


def create_token(
    engine: Engine,
    actor: str,
    user: str,
    *,
    label: str | None = None,
    expires: str | None = None,
    clock: Callable[[], dt.datetime] = _now,
) -> dict[str, Any]:
    """A new token for `user` (audited as `token.create`). The returned `secret` is the
    only copy there will ever be.

    Args:
        actor: who creates it: `user` themselves, or an admin.
        expires: a duration (`30d`) or `never`; default 90 days.

    Raises:
        TokenError, NotAllowedError, UserRefusedError (the refusal is audited).
    """
    target = f"tokens of {user}"

    def change() -> dict[str, Any]:
        lifetime = parse_expiry(expires)
        text = (label or "").strip()
        if len(text) > LABEL_LENGTH:
            raise TokenError(f"--label is longer than {LABEL_LENGTH} characters")
        now = clock()
        secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        row = rows.TokenRow(
            id=uuid.uuid4(),
            user_name=user,
            label=text,
            prefix=secret[:TOKEN_PREFIX_LENGTH],
            created_at=now,
            created_by=actor,
            expires_at=now + lifetime if lifetime else None,
            revoked_at=None,
            revoked_by=None,
            last_used_at=None,
            last_used_ip=None,
        )
        with engine.begin() as connection:
            _may_manage(_principal(connection, actor), user)
            require_user(connection, user)
            rows.insert_token(connection, row, digest(secret))
            details = {"token_id": str(row.id), "user": user, "label": text,
                       "prefix": row.prefix, "expires_at": row.expires_at}  # fmt: skip
            append_event(
                connection,
                actor=actor,
                action="token.create",
                target=f"token {row.prefix}",
                details={k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                         for k, v in details.items()},
            )  # fmt: skip
        return row.as_dict() | {"secret": secret}

    return audited_change(engine, actor, "token.create", target, change)


def _admit(
    connection: Connection,
    found: tuple[rows.TokenRow | None, rows.Holder | None],
    now: dt.datetime,
    ip: str | None,
    via: str,
) -> Principal:
    """The principal of a found token and its user's row, its use recorded; refused as
    `verify_token` says."""
    row, holder = found
    if row is None:
        raise TokenRefusedError("unknown", "unknown API token")
    if row.revoked_at is not None:
        raise TokenRefusedError(
            "revoked", f"token {row.prefix} was revoked {row.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenRefusedError(
            "expired", f"token {row.prefix} expired {row.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    if holder is None or holder.disabled_at is not None:
        raise TokenRefusedError(
            "user_disabled", f"token {row.prefix} belongs to {row.user_name}, who is disabled"
        )
    # The row says when the use was last recorded: no UPDATE at all within the minute.
    if row.last_used_at is None or row.last_used_at <= now - USE_RECORDED_EVERY:
        rows.touch(connection, row.id, now, ip, USE_RECORDED_EVERY)
    return principal_of(
        connection, row.user_name, holder.role, holder.kind, via=via, token_id=row.id
    )


def verify_token(
    engine: Engine,
    secret: str,
    *,
    ip: str | None = None,
    clock: Callable[[], dt.datetime] = _now,
) -> Principal:
    """The principal a secret stands for; records its use (at most once a minute).

    Raises:
        TokenRefusedError: unknown, revoked, expired, or the user is disabled.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise TokenRefusedError("unknown", "not a Timbel API token (they start with tbl_)")
    with engine.begin() as connection:
        return _admit(
            connection,
            rows.find_with_holder(connection, secret_sha256=digest(secret)),
            clock(),
            ip,
            "token",
        )


def verify_token_id(
    engine: Engine,
    token_id: uuid.UUID,
    *,
    ip: str | None = None,
    clock: Callable[[], dt.datetime] = _now,
) -> Principal:
    """The principal of a page session, which holds the id of the token it was opened with
    (signed), not its secret: the token is checked on every request as `verify_token` checks
    it, so revoking the token or disabling its user ends the session too.

    Raises:
        TokenRefusedError: unknown, revoked, expired, or the user is disabled.
    """
    with engine.begin() as connection:
        found = rows.find_with_holder(connection, token_id=token_id)
        return _admit(connection, found, clock(), ip, "session")


def _one(connection: Connection, ref: str) -> rows.TokenRow:
    found = rows.find_by_ref(connection, ref)
    if not found:
        raise TokenError(f"no token {ref!r}: see `timbel token list`")
    if len(found) > 1:
        raise TokenError(f"{ref!r} matches {len(found)} tokens: give its whole id")
    return found[0]


def revoke_token(
    engine: Engine, actor: str, ref: str, *, clock: Callable[[], dt.datetime] = _now
) -> dict[str, Any]:
    """Revoke the token `ref` (id, id prefix or token prefix), audited as `token.revoke`.

    Returns:
        {"token": {...}, "unchanged": bool} (unchanged: it was revoked already).
    """

    def change() -> dict[str, Any]:
        now = clock()
        with engine.begin() as connection:
            token = _one(connection, ref)
            _may_manage(_principal(connection, actor), token.user_name)
            unchanged = token.revoked_at is not None
            if not unchanged:
                rows.mark_revoked(connection, token.id, now, actor)
                append_event(
                    connection,
                    actor=actor,
                    action="token.revoke",
                    target=f"token {token.prefix}",
                    details={"token_id": str(token.id), "user": token.user_name,
                             "label": token.label},
                )  # fmt: skip
            token = _one(connection, str(token.id))
        return {"token": token.as_dict(), "unchanged": unchanged}

    return audited_change(engine, actor, "token.revoke", f"token {ref}", change)


def list_tokens(connection: Connection, actor: str, user: str | None = None) -> list[dict]:
    """Tokens (never their secrets), newest first. Anyone may list their own; an admin may
    list anyone's, or all (`user` None). A non-admin without `user` gets their own."""
    principal = _principal(connection, actor)
    if user is None and principal.role != "admin":
        user = principal.user
    if user is not None:
        _may_manage(principal, user)
    return [row.as_dict() for row in rows.list_tokens(connection, user)]
