"""`timbel token`: API tokens, for the REST API and scripts.

A token belongs to one user and acts as them. Anyone may create, list and revoke their own;
an admin may do so for anyone (a service account's tokens, say). The secret is printed once,
when it is created: only its SHA-256 is stored. Creating and revoking act as `--as`
(default TIMBEL_USER), a real user, and are audited.
"""

from __future__ import annotations

from typing import Any

import click

from timbel_dagster.cli.common import (
    connect,
    friendly_errors,
    print_json,
    settings_or_exit,
    writable_engine,
)
from timbel_dagster.cli.deploy import AS_HELP
from timbel_dagster.cli.tables import Column, plural, print_table, when
from timbel_dagster.identity import tokens as api_tokens

AS_OWNER_HELP = AS_HELP + " Their own tokens, or anyone's for an admin."
NOT_SHOWN_AGAIN = "This secret will not be shown again: store it now (only its hash is kept)."


def _state(token: dict[str, Any]) -> str:
    if token["revoked_at"] is not None:
        return f"revoked {when(token['revoked_at'])}"
    return "active"


COLUMNS = [
    Column("PREFIX", "prefix", cut=False),
    Column("USER", "user_name"),
    Column("LABEL", "label"),
    Column("CREATED", "created_at", when, cut=False),
    Column("EXPIRES", lambda t: t["expires_at"] or "never", when, cut=False),
    Column("LAST USED", "last_used_at", when, cut=False),
    Column("STATE", _state, cut=False),
]


@click.group()
def token() -> None:
    """API tokens: create (shown once), list, revoke."""


@token.command()
@click.option("--user", "user", required=True, help="Whose token: it acts as this user.")
@click.option(
    "--expires",
    default=api_tokens.DEFAULT_EXPIRY,
    show_default=True,
    help="How long it works: hours, days or weeks (12h, 30d, 2w), or `never`.",
)
@click.option("--label", default=None, help="What it is for (shown in `timbel token list`).")
@click.option("--as", "as_user", default=None, help=AS_OWNER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the token, secret included, as JSON.")
@friendly_errors
def create(user: str, expires: str, label: str | None, as_user: str | None, as_json: bool) -> None:
    """Create a token for USER and print its secret, once."""
    settings, engine = writable_engine()
    made = api_tokens.create_token(
        engine, as_user or settings.timbel_user, user, label=label, expires=expires
    )
    if as_json:
        print_json(made | {"note": NOT_SHOWN_AGAIN})
        return
    expiry = f"expires {when(made['expires_at'])} UTC" if made["expires_at"] else "never expires"
    click.echo(f"created token {made['prefix']} for {user} ({expiry}):")
    click.echo(made["secret"])
    click.echo(NOT_SHOWN_AGAIN)


@token.command("list")
@click.option("--user", "user", default=None, help="Only this user's tokens (an admin: anyone's).")
@click.option("--as", "as_user", default=None, help=AS_OWNER_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_tokens(user: str | None, as_user: str | None, as_json: bool) -> None:
    """Tokens, newest first: prefix, label, created, expires, last used, revoked. Never the
    secret. Without --user: an admin sees every token, anyone else their own."""
    actor = as_user or settings_or_exit().timbel_user
    with connect() as connection:
        rows = api_tokens.list_tokens(connection, actor, user)
    if as_json:
        print_json(rows)
        return
    whose = user or actor
    print_table(
        rows,
        COLUMNS,
        empty=f"no tokens of {whose}: create one with `timbel token create --user {whose}`",
        footer=plural(len(rows), "token"),
    )


@token.command()
@click.argument("ref", metavar="ID_OR_PREFIX")
@click.option("--as", "as_user", default=None, help=AS_OWNER_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def revoke(ref: str, as_user: str | None, as_json: bool) -> None:
    """Revoke the token ID_OR_PREFIX (its id, the id's first characters, or its prefix as
    `timbel token list` shows it): it stops working at once."""
    settings, engine = writable_engine()
    result = api_tokens.revoke_token(engine, as_user or settings.timbel_user, ref)
    if as_json:
        print_json(result)
        return
    made = result["token"]
    if result["unchanged"]:
        click.echo(f"token {made['prefix']} of {made['user_name']} was revoked already")
    else:
        click.echo(f"revoked token {made['prefix']} of {made['user_name']}")
