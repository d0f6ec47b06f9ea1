"""`timbel users`: the people and service accounts Timbel knows, managed without SQL.

Changes act as `--as` (default TIMBEL_USER), who must be an enabled admin, and are audited
in the same transaction. On an empty users table anyone may add the first user (an admin),
so that a fresh install can bootstrap; that is audited too.

A service account is a user of kind `service`, added with `timbel users add NAME --role ROLE
--service` rather than by a group of its own: it is a row of the same table with a role, a
team and an enabled flag, so `list`, `set-role`, `disable`, `enable` and `import` already
are the commands it needs, and one place lists everyone who can act. It acts only through
its API tokens (`timbel token create --user NAME`, by an admin); OIDC never signs it in.

`--team T` (and a users file's `team:`) is the user's home team and makes them a member of
T in the same transaction (T must exist: `timbel team add T`); see
`warehouse/people/home_team.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from timbel_dagster.cli.common import connect, friendly_errors, print_json, writable_engine
from timbel_dagster.cli.deploy import AS_HELP
from timbel_dagster.cli.tables import Column, day, plural, render
from timbel_dagster.warehouse.people import user_admin
from timbel_dagster.warehouse.people import users as people
from timbel_dagster.warehouse.people.users_file import load_users_file
from timbel_dagster.warehouse.schema.models import USER_KINDS, USER_ROLES


def _status(person: dict[str, Any]) -> str:
    disabled = person["disabled_at"]
    return "enabled" if disabled is None else f"disabled {day(disabled)}"


# `--json` keeps `disabled_at`; the table says it in words (STATUS).
COLUMNS = [
    Column("NAME", "name"),
    Column("ROLE", "role"),
    Column("KIND", "kind", cut=False),
    Column("TEAM", "team"),
    Column("DISPLAY NAME", "display_name"),
    Column("EMAIL", "email"),
    Column("STATUS", _status, cut=False),
]
AS_ADMIN_HELP = AS_HELP + " Only an admin may manage users."
ROLES = ", ".join(USER_ROLES)
EMPTY = "no users yet: add one with `timbel users add NAME --role ROLE`"


def _describe(user: dict[str, Any]) -> str:
    extra = f", team {user['team']}" if user.get("team") else ""
    what = "service account" if user.get("kind") == people.SERVICE else "user"
    return f"{what} {user['name']} (role {user['role']}{extra})"


@click.group()
def users() -> None:
    """People and service accounts: who may act in Timbel, with their role and team."""


@users.command("list")
@click.option("--role", help=f"Only users with this role ({ROLES}).")
@click.option("--team", help="Only the users whose team (home team) this is.")
@click.option(
    "--kind", type=click.Choice(USER_KINDS), help="Only people, or only service accounts."
)
@click.option("--all", "include_disabled", is_flag=True, help="Include disabled users.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_users(
    role: str | None, team: str | None, kind: str | None, include_disabled: bool, as_json: bool
) -> None:
    """Users with their role, kind (person or service), team and whether they are enabled
    (by name)."""
    with connect() as connection:
        found = people.list_users(connection, role, team, include_disabled, kind)
        total = people.count_users(connection) if not found else len(found)
    rows = [p.as_dict() for p in found]
    if as_json:
        print_json(rows)
        return
    if not rows:
        if total == 0:
            click.echo(EMPTY)
        else:
            shown = "no enabled user" if not include_disabled else "no user"
            wanted = " and ".join(
                f"{what} {value}"
                for what, value in (("role", role), ("team", team), ("kind", kind))
                if value
            )
            hint = "" if include_disabled else " (`--all` includes disabled users)"
            click.echo(f"{shown}{' with ' + wanted if wanted else ''}{hint}")
        return
    click.echo(render(rows, COLUMNS))
    click.echo(plural(len(rows), "user"))


@users.command()
@click.argument("name")
@click.option("--role", required=True, help=f"What they may do: {ROLES}.")
@click.option(
    "--team",
    help="Their (home) team, which must exist (`timbel team add`): they become a member of it.",
)
@click.option("--email", help="E-mail address for notifications.")
@click.option("--display-name", help="Full name, as shown in notifications.")
@click.option("--slack-id", help="Slack member id (U...), for mentions.")
@click.option(
    "--service",
    is_flag=True,
    help="A service account: acts only through API tokens (`timbel token create --user "
    "NAME`), never signs in with OIDC; needs no e-mail or Slack id.",
)
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def add(
    name: str,
    role: str,
    team: str | None,
    email: str | None,
    display_name: str | None,
    slack_id: str | None,
    service: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Add user NAME (a person, or with --service a service account) with a role, and make
    them a member of --team. On an empty users table anyone may add the first user, who
    must be an admin and a person; after that only an admin may."""
    item = people.entry(
        name,
        role,
        team=team,
        email=email,
        display_name=display_name,
        slack_id=slack_id,
        kind=people.SERVICE if service else people.PERSON,
    )
    settings, engine = writable_engine()
    actor = as_user or settings.timbel_user
    result = user_admin.add_user(engine, actor, item)
    if as_json:
        print_json(result)
        return
    click.echo(f"added {_describe(result['user'])}")
    if result["teams"]:
        click.echo(f"{name} joined team {team}")
    if service:
        click.echo(f"it acts through API tokens: `timbel token create --user {name}`")
    if result["bootstrap"]:
        click.echo(
            f"the users table was empty, so anyone may add the first user (audited as {actor}); "
            "from now on only an admin may manage users"
        )


@users.command("set-role")
@click.argument("name")
@click.argument("role")
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def set_role(name: str, role: str, as_user: str | None, as_json: bool) -> None:
    """Give user NAME the role ROLE (developer, team_lead, operations, admin, viewer)."""
    settings, engine = writable_engine()
    result = user_admin.set_role(engine, as_user or settings.timbel_user, name, role)
    if as_json:
        print_json(result)
    elif result["unchanged"]:
        click.echo(f"{name} already has role {role}: nothing changed")
    else:
        click.echo(f"{name}: role {result['from']} -> {role}")


def _switch(name: str, disabled: bool, as_user: str | None, as_json: bool) -> None:
    settings, engine = writable_engine()
    result = user_admin.set_disabled(engine, as_user or settings.timbel_user, name, disabled)
    state = "disabled" if disabled else "enabled"
    if as_json:
        print_json(result)
    elif result["unchanged"]:
        click.echo(f"{name} is already {state}: nothing changed")
    elif disabled:
        click.echo(f"{name} disabled: they may no longer act (`timbel users enable {name}`)")
    else:
        click.echo(f"{name} enabled")


@users.command()
@click.argument("name")
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def disable(name: str, as_user: str | None, as_json: bool) -> None:
    """Disable user NAME: they stay in the table (and the audit log) but may not act."""
    _switch(name, True, as_user, as_json)


@users.command()
@click.argument("name")
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def enable(name: str, as_user: str | None, as_json: bool) -> None:
    """Enable user NAME again."""
    _switch(name, False, as_user, as_json)


@users.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file and show what would change.")
@click.option("--as", "as_user", default=None, help=AS_ADMIN_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def import_file(file: Path, dry_run: bool, as_user: str | None, as_json: bool) -> None:
    """Add or update the users of a YAML FILE (a `users:` list of name, role, kind, team,
    email, display_name, slack_id), all in one transaction, making each a member of their
    team. The whole file is checked before anything is written; importing it again changes
    nothing."""

    entries = load_users_file(file)
    settings, engine = writable_engine()
    result = user_admin.import_users(
        engine, as_user or settings.timbel_user, entries, str(file), dry_run
    )
    if as_json:
        print_json(result)
        return
    for name in result["added"]:
        click.echo(f"  add     {name}")
    for name, fields in result["updated"].items():
        click.echo(f"  update  {name}: {', '.join(fields)}")
    for name, moved in result["teams"].items():
        click.echo(f"  teams   {name}: {', '.join(moved)}")
    counts = (
        f"{len(result['added'])} added, {len(result['updated'])} updated, "
        f"{len(result['unchanged'])} unchanged"
    )
    suffix = " (dry run: nothing was written)" if dry_run else ""
    click.echo(f"{file}: {counts}{suffix}")
    if result["bootstrap"] and not dry_run:
        click.echo("the users table was empty, so anyone may import the first users (audited)")
