"""`timbel notify`: subscriptions and the record of what was sent.

Subscription changes act as `--as` (default TIMBEL_USER), who must be a user of the
warehouse: their own subscriptions, or anyone's for an admin; a signed unsubscribe link acts
as the user it names. Every change, and every refused attempt, is audited.
"""

from __future__ import annotations

import click

from timbel_dagster.cli.common import friendly_errors, print_json, writable_engine
from timbel_dagster.cli.deploy import AS_HELP
from timbel_dagster.cli.tables import Column, count, plural, print_table, right, when
from timbel_dagster.notify import records
from timbel_dagster.notify.subscriptions import subscribe as add
from timbel_dagster.notify.subscriptions import unsubscribe as remove
from timbel_dagster.notify.subscriptions import unsubscribe_by_token


@click.group()
def notify() -> None:
    """Notification subscriptions and the record of what was sent."""


@notify.command()
@click.option("--user", required=True)
@click.option("--channel", type=click.Choice(["slack", "email"]), required=True)
@click.option("--event", default="*", show_default=True, help="alert, pipeline_failed, ... or *")
@click.option("--rule", default="*", show_default=True, help="An alert rule name, or *.")
@click.option("--min-severity", default="info", show_default=True)
@click.option("--as", "as_user", default=None, help=AS_HELP)
@friendly_errors
def subscribe(
    user: str, channel: str, event: str, rule: str, min_severity: str, as_user: str | None
) -> None:
    """Send USER's notices of EVENT on CHANNEL."""

    settings, engine = writable_engine()
    actor = as_user or settings.timbel_user
    changed = add(engine, user, channel, event, rule, min_severity, actor=actor)
    click.echo(
        f"{user} {'subscribed' if changed else 'was already subscribed'} to {event} on {channel}"
    )


@notify.command()
@click.option("--user")
@click.option("--channel", type=click.Choice(["slack", "email"]))
@click.option("--event", default="*", show_default=True)
@click.option("--rule", default="*", show_default=True)
@click.option("--token", help="The token of a signed unsubscribe link instead of the options.")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@friendly_errors
def unsubscribe(
    user: str | None,
    channel: str | None,
    event: str,
    rule: str,
    token: str | None,
    as_user: str | None,
) -> None:
    """Stop USER's notices of EVENT on CHANNEL (or what a signed link names)."""
    settings, engine = writable_engine()
    if token:
        secret = settings.timbel_secret_key
        done = unsubscribe_by_token(
            engine, token, secret.get_secret_value() if secret else None,
            max_age_days=settings.timbel_unsubscribe_link_days,
        )  # fmt: skip
        user, channel, event = done["user"], done["channel"], done["event"]
    else:
        if not user or not channel:
            raise ValueError("give --user and --channel, or --token")
        remove(engine, user, channel, event, rule, actor=as_user or settings.timbel_user)
    click.echo(f"{user} unsubscribed from {event} on {channel}")


@notify.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def history(limit: int, as_json: bool) -> None:
    """The latest notifications with their status, attempts and last error."""
    _, engine = writable_engine()
    rows = records.history(engine, limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        [
            Column("SENT", "created_at", when),
            Column("EVENT", "event"),
            Column("CHANNEL", "channel"),
            Column("RECIPIENT", "recipient"),
            Column("STATUS", "status"),
            right("TRIES", "attempts", count),
            Column("LAST ERROR", "last_error"),
        ],
        empty="no notifications sent yet: subscribe someone (`timbel notify subscribe --user "
        "NAME --channel slack --event alert`); alerts and failed pipelines are then sent as "
        "they happen",
        footer=plural(len(rows), "notification")
        + (f" (the newest {limit}; --limit shows more)" if len(rows) == limit else ""),
    )
