"""Current alerts, their events, and silences (beside `rule_store`, the rules): what
`timbel alerts list | silence` and the API's /alerts routes read and write.

A silence names its real actor: a known, enabled user of the warehouse (the CLI's checked
`--as`/TIMBEL_USER, the API's token), recorded as `created_by` and as the audit event's actor
in the same transaction. Ending a silence early keeps its row (ends_at moves to now), so the
record of who muted what stays.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people.users import require_user
from timbel_dagster.warehouse.schema.notify import ALERT_STATES, Alert, AlertEvent, Silence

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MAX_SILENCE = dt.timedelta(days=90)


class SilenceNotFoundError(LookupError):
    """No silence has that id."""


def list_alerts(engine: Engine, state: str | None = "firing") -> list[dict[str, Any]]:
    """The current alerts in `state` (None: every state), by rule then start."""
    if state is not None and state not in ALERT_STATES:
        raise ValueError(f"unknown alert state {state!r}; valid: {', '.join(ALERT_STATES)}")
    query = select(Alert.__table__).order_by(Alert.rule, Alert.active_since)
    if state is not None:
        query = query.where(Alert.state == state)
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


def alert_events(
    engine: Engine,
    *,
    kind: str | None = None,
    rule: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Alert events (fired, renotified, resolved), newest first; `before`: ids below it."""
    table = AlertEvent.__table__
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(table.c.kind == kind)
    if rule is not None:
        query = query.where(table.c.rule == rule)
    if before is not None:
        query = query.where(table.c.id < before)
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


def _check_silence(matchers: Mapping[str, str], length: dt.timedelta, comment: str) -> None:
    if not matchers:
        raise ValueError("a silence needs at least one label=value matcher")
    if any(not key for key in matchers):
        raise ValueError("a matcher's label is empty")
    if not comment.strip():
        raise ValueError("the comment must say why")
    if length <= dt.timedelta(0):
        raise ValueError(f"a silence must last longer than 0s, not {length}")
    if length > MAX_SILENCE:
        raise ValueError(f"a silence lasts at most {MAX_SILENCE.days} days, not {length}")


def create_silence(
    engine: Engine,
    actor: str,
    matchers: Mapping[str, str],
    length: dt.timedelta,
    comment: str,
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Mute notices of alerts whose labels match every matcher, for `length`.

    Raises:
        ValueError: no matchers, an empty comment, or a length out of (0, 90 days].
        UserRefusedError: `actor` is not a known, enabled user (nothing is stored).
    """
    _check_silence(matchers, length, comment)
    now = now or dt.datetime.now(dt.UTC)
    row = {
        "id": uuid.uuid4(),
        "matchers": dict(matchers),
        "starts_at": now,
        "ends_at": now + length,
        "created_by": actor,
        "comment": comment,
    }
    with engine.begin() as connection:
        require_user(connection, actor, acting=True)
        connection.execute(insert(Silence).values(**row, created_at=now))
        append_event(
            connection,
            actor=actor,
            action="alerts.silence",
            target=str(row["id"]),
            details={
                "matchers": row["matchers"],
                "ends_at": row["ends_at"].isoformat(),
                "comment": comment,
            },
        )
    return row | {"created_at": now}


def list_silences(
    engine: Engine, *, include_expired: bool = False, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Silences, newest first; by default only those still in force."""
    table = Silence.__table__
    query = select(table).order_by(table.c.starts_at.desc(), table.c.id)
    if not include_expired:
        query = query.where(table.c.ends_at > (now or dt.datetime.now(dt.UTC)))
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


def expire_silence(
    engine: Engine, actor: str, silence_id: uuid.UUID, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """End a silence now (idempotent: an expired one is left as it is), audited.

    Raises:
        SilenceNotFoundError: no silence has that id.
        UserRefusedError: `actor` is not a known, enabled user.
    """
    now = now or dt.datetime.now(dt.UTC)
    table = Silence.__table__
    with engine.begin() as connection:
        require_user(connection, actor, acting=True)
        found = connection.execute(select(table).where(table.c.id == silence_id)).mappings()
        row = found.first()
        if row is None:
            raise SilenceNotFoundError(f"no silence with id {silence_id}")
        ends = row["ends_at"] if row["ends_at"].tzinfo else row["ends_at"].replace(tzinfo=dt.UTC)
        changed = ends > now
        if changed:
            connection.execute(update(table).where(table.c.id == silence_id).values(ends_at=now))
            append_event(
                connection,
                actor=actor,
                action="alerts.unsilence",
                target=str(silence_id),
                details={"was_until": ends.isoformat()},
            )
    return dict(row) | {"ends_at": now if changed else ends, "changed": changed}
