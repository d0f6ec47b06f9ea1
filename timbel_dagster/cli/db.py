"""`timbel db`: warehouse schema migrations."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import (
    friendly_errors,
    print_json,
    settings_or_exit,
)
from timbel_dagster.settings import display_url
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import check_connection


# --- db ----------------------------------------------------------------------------------
@click.group()
def db() -> None:
    """Warehouse schema migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def db_upgrade(revision: str, as_json: bool) -> None:
    """Migrate the warehouse up (running it twice is a no-op)."""

    settings = settings_or_exit()
    before, after = migrate.upgrade(settings.database_url, revision, actor=settings.timbel_user)
    if as_json:
        print_json(
            {
                "database": display_url(settings.database_url),
                "before": before,
                "after": after,
                "changed": before != after,
            }
        )
    elif before == after:
        click.echo(f"Warehouse already at {after} ({display_url(settings.database_url)}).")
    else:
        click.echo(
            f"Migrated {before or 'empty'} -> {after} ({display_url(settings.database_url)})."
        )


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly_errors
def db_downgrade(revision: str, yes: bool) -> None:
    """Migrate the warehouse down to REVISION (`base` drops every table).

    The audit log is never dropped with events no archive holds: archive them first
    (`timbel audit archive --older-than 0`); the few events archiving leaves behind, and this
    downgrade's own event, go to a final archive file in the audit archive directory.
    """

    settings = settings_or_exit()
    if not yes:
        click.confirm(
            f"Downgrade the warehouse to {revision}? Data in dropped tables is lost", abort=True
        )
    archive_dir = settings.timbel_audit_archive_dir or settings.timbel_home / "audit-archive"
    before, after = migrate.downgrade(
        settings.database_url, revision, actor=settings.timbel_user, archive_dir=archive_dir
    )
    click.echo(f"Migrated {before} -> {after or 'empty'}.")


@db.command("current")
@friendly_errors
def db_current() -> None:
    """Print the warehouse's schema revision and the newest this code ships."""

    settings = settings_or_exit()
    check_connection(settings.database_url)
    current = migrate.current_revision(settings.database_url)
    click.echo(f"current: {current or 'empty'}  head: {migrate.head_revision()}")
