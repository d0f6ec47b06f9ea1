"""`timbel team`: teams, their members, and which team owns each service.

A team lead approves deployment requests only for the services their team owns, so every
service that goes to staging or prod needs an owner (`timbel team own`). Changes act as
`--as` (default TIMBEL_USER), who must be an admin, and are audited.
"""

from __future__ import annotations

import click

from timbel_dagster.cli.common import connect, friendly_errors, print_json, writable_engine
from timbel_dagster.cli.deploy import AS_HELP
from timbel_dagster.cli.tables import Column, plural, print_table
from timbel_dagster.identity import teams as team_admin

AS_ADMIN_HELP = AS_HELP + " Only an admin may manage teams."
COLUMNS = [
    Column("TEAM", "name"),
    Column("DISPLAY NAME", "display_name"),
    Column("MEMBERS", "members", wrap=True),
    Column("SERVICES", "services", wrap=True),
]


@click.group()
def team() -> None:
    """Teams: members, and the services each owns (for approvals)."""


@team.command("list")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_teams(as_json: bool) -> None:
    """Teams with their members and the services they own."""
    with connect() as connection:
        rows = team_admin.list_teams(connection)
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        COLUMNS,
        empty="no teams yet: add one with `timbel team add NAME`",
        footer=plural(len(rows), "team"),
    )


@team.command()
@click.argument("name")
@click.option("--display-name", default=None, help="The team's full name.")
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def add(name: str, display_name: str | None, as_user: str | None, as_json: bool) -> None:
    """Add team NAME."""
    settings, engine = writable_engine()
    made = team_admin.add_team(engine, as_user or settings.timbel_user, name, display_name)
    if as_json:
        print_json(made)
        return
    click.echo(f"added team {name}: add people with `timbel team member {name} USER`")


@team.command()
@click.argument("team_name", metavar="TEAM")
@click.argument("user")
@click.option("--remove", is_flag=True, help="Take USER out of TEAM instead.")
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def member(team_name: str, user: str, remove: bool, as_user: str | None, as_json: bool) -> None:
    """Make USER a member of TEAM (or, with --remove, no longer one)."""
    settings, engine = writable_engine()
    result = team_admin.set_member(
        engine, as_user or settings.timbel_user, team_name, user, remove=remove
    )
    if as_json:
        print_json(result)
        return
    if result["unchanged"]:
        state = "is not" if remove else "is already"
        click.echo(f"{user} {state} a member of {team_name}: nothing changed")
    else:
        click.echo(f"{user} {'left' if remove else 'joined'} {team_name}")


@team.command()
@click.argument("service")
@click.option("--team", "team_name", required=True, help="The team that owns SERVICE.")
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def own(service: str, team_name: str, as_user: str | None, as_json: bool) -> None:
    """TEAM owns SERVICE from now on: its team leads approve SERVICE's requests."""
    settings, engine = writable_engine()
    result = team_admin.own(engine, as_user or settings.timbel_user, service, team_name)
    if as_json:
        print_json(result)
        return
    if result["unchanged"]:
        click.echo(f"{team_name} already owns {service}: nothing changed")
    elif result["from"]:
        click.echo(f"{service}: owner {result['from']} -> {team_name}")
    else:
        click.echo(f"{team_name} owns {service}")
