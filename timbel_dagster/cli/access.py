"""`timbel access`: what each role may do, from the one policy table (identity/policy.py).

Its own group beside `timbel users`, `timbel token` and `timbel team`: those change who
someone is; this reads the rules every CLI command and API route applies to them. It needs
no warehouse and no settings.
"""

from __future__ import annotations

from typing import Any

import click

from timbel_dagster.cli.common import fail, friendly_errors, print_json
from timbel_dagster.cli.tables import Column, plural, print_table
from timbel_dagster.identity import policy


def _write(row: dict[str, Any]) -> str:
    return "yes" if row["write"] else "no"


COLUMNS = [
    Column("ACTION", "action", cut=False),
    Column("ROLES", "roles_text", wrap=True),
    Column("SCOPE", "scope", cut=False),
    Column("WRITE", _write, cut=False),
    Column("WHAT", "note", wrap=True),
]


@click.group()
def access() -> None:
    """Access rules: which roles may take each action, over which scope."""


@access.command("policy")
@click.option("--json", "as_json", is_flag=True, help="One object per action.")
@click.option(
    "--markdown", "as_markdown", is_flag=True, help="The markdown table docs/api.md carries."
)
@friendly_errors
def show_policy(as_json: bool, as_markdown: bool) -> None:
    """The policy table: each action with the roles that may take it, its scope (global,
    tenant, team, self) and whether it writes (audited, and the API's write rate limit)."""
    if as_json and as_markdown:
        fail("--json and --markdown: choose one")
    rows = policy.as_rows()
    if as_json:
        print_json(rows)
    elif as_markdown:
        click.echo(policy.markdown(), nl=False)
    else:
        print_table(
            rows,
            COLUMNS,
            empty="the policy table is empty",
            footer=f"{plural(len(rows), 'action')}; an admin may take every one",
        )
