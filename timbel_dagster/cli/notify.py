"""`timbel notify`: subscriptions and the record of what was sent."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import friendly_errors, print_json, writable_engine


@click.group()
def notify() -> None:
    """Notification subscriptions and the record of what was sent."""


@notify.command()
@click.option("--user", required=True)
@click.option("--channel", type=click.Choice(["slack", "email"]), required=True)
@click.option("--event", default="*", show_default=True, help="alert, pipeline_failed, ... or *")
@click.option("--rule", default="*", show_default=True, help="An alert rule name, or *.")
@click.option("--min-severity", default="info", show_default=True)
@friendly_errors
def subscribe(user: str, channel: str, event: str, rule: str, min_severity: str) -> None:
    """Send USER's notices of EVENT on CHANNEL."""
    from timbel_dagster.notify.subscriptions import subscribe as add

    _, engine = writable_engine()
    changed = add(engine, user, channel, event, rule, min_severity)
    click.echo(
        f"{user} {'subscribed' if changed else 'was already subscribed'} to {event} on {channel}"
    )


@notify.command()
@click.option("--user")
@click.option("--channel", type=click.Choice(["slack", "email"]))
@click.option("--event", default="*", show_default=True)
@click.option("--rule", default="*", show_default=True)
@click.option("--token", help="The token of a signed unsubscribe link instead of the options.")
@friendly_errors
def unsubscribe(
    user: str | None, channel: str | None, event: str, rule: str, token: str | None
) -> None:
    """Stop USER's notices of EVENT on CHANNEL (or what a signed link names)."""
    from timbel_dagster.notify.email import read_unsubscribe_token
    from timbel_dagster.notify.subscriptions import unsubscribe as remove

    settings, engine = writable_engine()
    if token:
        if not settings.timbel_secret_key:
            raise ValueError("TIMBEL_SECRET_KEY is not set: unsubscribe links cannot be checked")
        user, channel, event = read_unsubscribe_token(
            token, settings.timbel_secret_key.get_secret_value()
        )
    if not user or not channel:
        raise ValueError("give --user and --channel, or --token")
    remove(engine, user, channel, event, rule)
    click.echo(f"{user} unsubscribed from {event} on {channel}")


@notify.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def history(limit: int, as_json: bool) -> None:
    """The latest notifications with their status, attempts and last error."""
    from sqlalchemy import select

    from timbel_dagster.warehouse.models_notify import Notification as N

    _, engine = writable_engine()
    query = (
        select(N.created_at, N.event, N.channel, N.recipient, N.status, N.attempts, N.last_error)
        .order_by(N.created_at.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings()]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        error = f"  {r['last_error'][:80]}" if r["last_error"] else ""
        click.echo(
            f"{r['created_at']:%Y-%m-%d %H:%M} {r['event']:<16} {r['channel']:<6} "
            f"{r['recipient']:<28} {r['status']:<8} x{r['attempts']}{error}"
        )
