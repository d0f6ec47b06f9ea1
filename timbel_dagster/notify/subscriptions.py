"""Who wants which notifications on which channel.

A subscription row names a user, a channel, an event (one event such as `alert_fired`, a
family such as `alert`, or `*`), an alert rule (or `*`) and the least severity wanted. An
unsubscribe keeps its row with `active` false: it overrides every matching active row of the
same user and channel that is not strictly more specific, so unsubscribing from `alert_fired`
wins over a subscription to `*`, while a subscription to `alert_fired` for rule `disk_full`
wins over an unsubscribe from `alert_fired` for every rule.

Every change is audited (`notify.subscribe` / `notify.unsubscribe`, the acting user as actor,
the subscriber as target) in the same transaction. Users change their own subscriptions;
changing another user's takes an admin, and a refused attempt is audited as `.refused`.

A disabled user (`timbel users disable`) receives nothing while their subscriptions stay:
`subscribers` sets them apart, and the dispatcher records each notice they would have had
as `skipped`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from timbel_dagster.notify.email import DEFAULT_LINK_DAYS, read_unsubscribe_token
from timbel_dagster.notify.messages import (
    SUBSCRIBABLE_EVENTS,
    Message,
    Recipient,
    event_family,
    severity_rank,
)
from timbel_dagster.pipeline_templates.access import viewer
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.schema.notify import CHANNELS, SEVERITIES, Subscription
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

_KEY = ("user_name", "channel", "event", "rule")


def _check(channel: str, event: str, rule: str, min_severity: str = "info") -> None:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; valid: {', '.join(CHANNELS)}")
    if event not in SUBSCRIBABLE_EVENTS:
        raise ValueError(f"unknown event {event!r}; valid: {', '.join(SUBSCRIBABLE_EVENTS)}")
    if min_severity not in SEVERITIES:
        raise ValueError(f"unknown severity {min_severity!r}; valid: {', '.join(SEVERITIES)}")
    if not rule:
        raise ValueError("rule is empty; use '*' for every rule")


def _require_user(connection: Connection, user: str) -> None:
    from sqlalchemy import select

    users = User.__table__
    if connection.execute(select(users.c.name).where(users.c.name == user)).first() is None:
        raise LookupError(f"unknown user {user!r}: there is no such name in the users table")


class SubscriptionAccessError(ValueError):
    """The acting user may not change this subscription; nothing changed (it is audited)."""


def _authorize(connection: Connection, actor: str, user: str, via: str | None) -> None:
    """The actor must be a known user; another user's subscription takes an admin. A signed
    link (`via`) is the subscriber's own consent, so it acts as them."""

    if via is not None and actor == user:
        return
    acting = viewer(connection, actor, known=True)
    if actor != user and not acting.is_admin:
        raise SubscriptionAccessError(
            f"{actor} may not change {user}'s subscriptions: only {user} or an admin may "
            f"({actor} is a {acting.role})"
        )


def _write(
    engine: Engine,
    action: str,
    actor: str | None,
    via: str | None,
    user: str,
    channel: str,
    event: str,
    rule: str,
    **values: object,
) -> bool:
    actor = user if actor is None else actor
    now = dt.datetime.now(dt.UTC)
    row = {
        "id": stable_id("notification_subscriptions", user, channel, event, rule),
        "user_name": user,
        "channel": channel,
        "event": event,
        "rule": rule,
        **values,
        "created_at": now,
        "updated_at": now,
    }
    details = {"channel": channel, "event": event, "rule": rule, **values}
    if via is not None:
        details["via"] = via
    try:
        with engine.begin() as connection:
            _require_user(connection, user)
            _authorize(connection, actor, user, via)
            result = bulk_upsert(connection, Subscription.__table__, [row], _KEY)
            changed = result.written > 0
            append_event(
                connection,
                actor=actor,
                action=action,
                target=user,
                details=details | {"changed": changed},
            )
    except (LookupError, ValueError) as error:
        with engine.begin() as connection:
            append_event(
                connection,
                actor=actor[:256],
                action=f"{action}.refused",
                target=user,
                details=details | {"error": str(error)},
            )
        raise
    return changed


def subscribe(
    engine: Engine,
    user: str,
    channel: str,
    event: str = "*",
    rule: str = "*",
    min_severity: str = "info",
    *,
    actor: str | None = None,
) -> bool:
    """Subscribe `user` to `event` notifications (alerts of `rule`) at `min_severity` or worse.

    Args:
        actor: who asks (None: `user` themself); another user's subscription takes an admin.

    Returns:
        Whether anything changed (False when the same subscription was already active).

    Raises:
        LookupError: `user` or `actor` is not in the users table.
        SubscriptionAccessError: `actor` is neither `user` nor an admin (audited).
        ValueError: an unknown channel, event or severity; the message lists the valid ones.
    """
    _check(channel, event, rule, min_severity)
    return _write(
        engine, "notify.subscribe", actor, None, user, channel, event, rule,
        min_severity=min_severity, active=True,
    )  # fmt: skip


def unsubscribe(
    engine: Engine,
    user: str,
    channel: str,
    event: str = "*",
    rule: str = "*",
    *,
    actor: str | None = None,
    via: str | None = None,
) -> bool:
    """Stop `event` notifications (of `rule`) to `user` on `channel`.

    The row stays, inactive, so that it also overrides broader subscriptions and defaults.

    Args:
        actor: who asks (None: `user` themself); another user's subscription takes an admin.
        via: how `user` consented without being the caller (`signed link`: a checked
            unsubscribe token); the audit event records it.

    Returns:
        Whether anything changed.

    Raises:
        LookupError: `user` or `actor` is not in the users table.
        SubscriptionAccessError: `actor` is neither `user` nor an admin (audited).
        ValueError: an unknown channel or event.
    """
    _check(channel, event, rule)
    return _write(
        engine, "notify.unsubscribe", actor, via, user, channel, event, rule, active=False
    )


def unsubscribe_by_token(
    engine: Engine,
    token: str,
    secret: str | None,
    *,
    max_age_days: int = DEFAULT_LINK_DAYS,
    now: dt.datetime | None = None,
) -> dict[str, object]:
    """Unsubscribe as a signed one-click link says (`notify.email.unsubscribe_token`): the link
    is its user's own consent, so it acts as them, audited `via` the signed link. Using the
    same link again changes nothing.

    Args:
        max_age_days: how long a link works (TIMBEL_UNSUBSCRIBE_LINK_DAYS); see
            `read_unsubscribe_token` for links made before they carried an issued-at.

    Returns:
        {"user", "channel", "event", "changed"}.

    Raises:
        ValueError: no secret key to check links with, or the token is garbled or was not
            signed with it (nothing changes). UnsubscribeLinkExpiredError (a ValueError):
            the link is genuine but expired (nothing changes).
        LookupError: the user the link names is no longer in the users table.
    """
    if not secret:
        raise ValueError("TIMBEL_SECRET_KEY is not set: unsubscribe links cannot be checked")
    user, channel, event = read_unsubscribe_token(token, secret, max_age_days=max_age_days, now=now)
    changed = unsubscribe(engine, user, channel, event, actor=user, via="signed link")
    return {"user": user, "channel": channel, "event": event, "changed": changed}


def list_subscriptions(engine: Engine, user: str | None = None) -> list[dict[str, object]]:
    """Subscription rows (active ones and the unsubscribes kept as inactive rows), of `user`
    or everyone's, by user, channel, event and rule."""
    from sqlalchemy import select

    subs = Subscription.__table__
    query = select(subs).order_by(subs.c.user_name, subs.c.channel, subs.c.event, subs.c.rule)
    if user is not None:
        query = query.where(subs.c.user_name == user)
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


def find_subscription(engine: Engine, subscription_id: object) -> dict[str, object] | None:
    """The subscription row with that id, or None."""
    from sqlalchemy import select

    subs = Subscription.__table__
    with engine.connect() as connection:
        row = connection.execute(select(subs).where(subs.c.id == subscription_id)).mappings()
        found = row.first()
    return dict(found) if found is not None else None


def _specificity(row_event: str, row_rule: str) -> tuple[int, int]:
    """How narrowly a matching row names the message: (event, rule), larger is narrower."""
    event_level = 0 if row_event == "*" else 2 if "_" in row_event else 1
    return event_level, 0 if row_rule == "*" else 1


def _narrower(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """`a` is strictly more specific than `b` in the partial order of the two dimensions."""
    return a != b and a[0] >= b[0] and a[1] >= b[1]


def _wanted(rows: list[tuple[tuple[int, int], bool, str]], severity: str) -> bool:
    """An active row lets the message through when it is strictly narrower than every
    matching inactive row; when the two are not comparable, the unsubscribe wins."""
    inactive = [spec for spec, active, _ in rows if not active]
    return any(
        active
        and severity_rank(severity) <= severity_rank(min_severity)
        and all(_narrower(spec, off) for off in inactive)
        for spec, active, min_severity in rows
    )


@dataclass(frozen=True)
class Subscribers:
    """Who is subscribed to a message, by channel (each list sorted by name): `enabled`
    receive it; `disabled` would have, but a disabled user gets no notifications."""

    enabled: dict[str, list[Recipient]] = field(default_factory=dict)
    disabled: dict[str, list[Recipient]] = field(default_factory=dict)


def recipients(
    engine: Engine, message: Message, rule: str | None = None
) -> dict[str, list[Recipient]]:
    """The enabled users subscribed to `message`, by channel (see `subscribers`)."""
    return subscribers(engine, message, rule).enabled


def subscribers(engine: Engine, message: Message, rule: str | None = None) -> Subscribers:
    """The users subscribed to `message`, by channel, sorted by name, the disabled apart.

    Args:
        engine: the warehouse.
        message: the event to notify about; its event and severity are matched.
        rule: the alert rule the message is about, if any; without one only
            subscriptions to every rule (`*`) match.

    Returns:
        Channel -> subscribers, enabled and disabled; channels nobody is subscribed on are
        left out.
    """
    from sqlalchemy import select

    subs, users = Subscription.__table__, User.__table__
    rules = ["*"] if rule is None else ["*", rule]
    events = ["*", event_family(message.event), message.event]
    query = (
        select(
            subs.c.user_name,
            subs.c.channel,
            subs.c.event,
            subs.c.rule,
            subs.c.active,
            subs.c.min_severity,
            users.c.display_name,
            users.c.email,
            users.c.slack_id,
            users.c.disabled_at,
        )
        .join(users, users.c.name == subs.c.user_name)
        .where(subs.c.event.in_(events), subs.c.rule.in_(rules))
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    grouped: dict[tuple[str, str], list[tuple[tuple[int, int], bool, str]]] = {}
    people: dict[str, Recipient] = {}
    disabled: set[str] = set()
    for row in rows:
        spec = _specificity(row.event, row.rule)
        grouped.setdefault((row.channel, row.user_name), []).append(
            (spec, bool(row.active), row.min_severity)
        )
        people[row.user_name] = Recipient(row.user_name, row.display_name, row.email, row.slack_id)
        if row.disabled_at is not None:
            disabled.add(row.user_name)
    found = Subscribers()
    for (channel, name), matches in sorted(grouped.items()):
        if _wanted(matches, message.severity):
            side = found.disabled if name in disabled else found.enabled
            side.setdefault(channel, []).append(people[name])
    return found


def users_by_name(engine: Engine, names: Iterable[str]) -> dict[str, Recipient]:
    """The enabled users among `names`, by name (for mentions of people, not subscribers): a
    disabled user is named without their Slack id, so the mention does not notify them."""
    from sqlalchemy import select

    wanted = sorted(set(names))
    if not wanted:
        return {}
    users = User.__table__
    query = select(users.c.name, users.c.display_name, users.c.email, users.c.slack_id).where(
        users.c.name.in_(wanted), users.c.disabled_at.is_(None)
    )
    with engine.connect() as connection:
        return {row.name: Recipient(*row) for row in connection.execute(query)}
