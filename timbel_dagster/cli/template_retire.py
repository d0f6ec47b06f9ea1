"""`timbel template retire | restore`: take a stored template out of use, and put it back
(listed in `template_store.COMMANDS`). Its versions stay readable either way."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import friendly_errors, print_json, writable_engine
from timbel_dagster.pipeline_templates import retirement

AS_HELP = "Act as this user (default TIMBEL_USER); changes need a user of the users table."


@click.command()
@click.argument("name")
@click.option("--reason", required=True, help="Why it is retired (kept, and audited).")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def retire(name: str, reason: str, as_user: str | None, as_json: bool) -> None:
    """Retire template NAME: hidden from the marketplace (unless --all), no new versions,
    ratings, tags or applications; its versions stay readable. Owner or admin."""
    settings, engine = writable_engine()
    made = retirement.retire(engine, as_user or settings.timbel_user, name, reason)
    if as_json:
        print_json(made)
    else:
        click.echo(f"{name}: retired by {made['retired_by']} ({made['retired_reason']})")


@click.command()
@click.argument("name")
@click.option("--as", "as_user", default=None, help=AS_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def restore(name: str, as_user: str | None, as_json: bool) -> None:
    """Put retired template NAME back in use. Owner or admin."""
    settings, engine = writable_engine()
    made = retirement.restore(engine, as_user or settings.timbel_user, name)
    if as_json:
        print_json(made)
    else:
        click.echo(f"{name}: restored")


COMMANDS = (retire, restore)
