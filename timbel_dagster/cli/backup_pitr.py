"""`timbel backup base | bases | prune-bases | archive-wal | pitr`: point-in-time recovery of
the warehouse's PostgreSQL cluster (docs/operations.md, "Point-in-time recovery").

`cli/app.py` adds `COMMANDS` to the `backup` group.
"""

from __future__ import annotations

from pathlib import Path

import click

from timbel_dagster.cli.backup import size_text
from timbel_dagster.cli.common import echo_for, friendly_errors, print_json, settings_or_exit
from timbel_dagster.cli.tables import Column, print_table
from timbel_dagster.warehouse.backup.base_record import take_recorded_base_backup
from timbel_dagster.warehouse.backup.base_retention import partial_lines, prune_base_backups
from timbel_dagster.warehouse.backup.basebackup import list_base_backups
from timbel_dagster.warehouse.backup.configured import orphan_age
from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.backup.pitr import recover_to_time
from timbel_dagster.warehouse.backup.retention import PruneIncomplete
from timbel_dagster.warehouse.backup.sources import backend
from timbel_dagster.warehouse.backup.wal import archive_wal_file

_DIR_HELP = "The base backups' directory (default TIMBEL_BASE_BACKUP_DIR)."
_WAL_HELP = "The WAL archive (default TIMBEL_WAL_ARCHIVE_DIR)."


@click.command()
@click.option("--connection", help="The PostgreSQL server to back up, as a URL whose role has "
              "REPLICATION (default TIMBEL_DATABASE_URL).")  # fmt: skip
@click.option("--dir", "directory", type=click.Path(path_type=Path), help=_DIR_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def base(connection: str | None, directory: Path | None, as_json: bool) -> None:
    """Take a base backup of the whole PostgreSQL cluster with pg_basebackup (plain format,
    WAL streamed, SHA-256 manifest), check it with pg_verifybackup, and record where it
    starts in the WAL; the start of every `timbel backup pitr`. Audited as `backup.base`."""
    settings = settings_or_exit()
    url = connection or settings.database_url
    if backend(url) != "postgresql":
        raise BackupError("base backups are of a PostgreSQL server: pass --connection URL")
    taken = take_recorded_base_backup(
        url,
        (directory or settings.base_backup_dir).resolve(),
        bindir=settings.timbel_pg_bindir,
        database_url=settings.database_url,  # the warehouse's audit log: backup.base
        actor=settings.timbel_user,
        progress=echo_for(True),  # progress on stderr, the result on stdout
    )
    if as_json:
        print_json(taken)
    else:
        click.echo(
            f"base backup {taken['id']}: {size_text(taken['size'])}, WAL from {taken['start_lsn']} "
            f"({taken['start_segment']}), finished {taken['finished_at'][:19]} UTC, verified; "
            f"in {taken['path']}"
        )


@click.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), help=_DIR_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def bases(directory: Path | None, as_json: bool) -> None:
    """The base backups, oldest first."""
    settings = settings_or_exit()
    where = (directory or settings.base_backup_dir).resolve()
    found = list_base_backups(where)
    if as_json:
        print_json(found)
        return
    print_table(
        found,
        [
            Column("ID", "id", cut=False),
            Column("FINISHED", lambda b: (b.get("finished_at") or "")[:19]),
            Column("START WAL", lambda b: b.get("start_segment") or ""),
            Column("SIZE", lambda b: size_text(b["size"]) if "size" in b else "", justify="right"),
            Column("PROBLEM", lambda b: b.get("problem") or "", wrap=True),
        ],
        empty=f"no base backups in {where}",
    )


@click.command("prune-bases")
@click.option("--dir", "directory", type=click.Path(path_type=Path), help=_DIR_HELP)
@click.option("--wal-dir", type=click.Path(path_type=Path), help=_WAL_HELP)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def prune_bases(directory: Path | None, wal_dir: Path | None, dry_run: bool, as_json: bool) -> None:
    """Keep the newest TIMBEL_BASE_BACKUP_KEEP (4) good base backups and delete the others,
    and the copies a killed base backup abandoned (.ID.partial older than
    TIMBEL_BACKUP_ORPHAN_HOURS, 48, with no writer running), then the archived WAL before the
    oldest one kept (never the newest base backup, never WAL a kept one or a copy still being
    written needs, never one that cannot be read)."""
    settings = settings_or_exit()
    try:
        result = prune_base_backups(
            (directory or settings.base_backup_dir).resolve(),
            (wal_dir or settings.wal_archive_dir).resolve(),
            settings.timbel_base_backup_keep,
            database_url=settings.database_url,
            actor=settings.timbel_user,
            dry_run=dry_run,
            orphan_age=orphan_age(settings),
        )
    except PruneIncomplete as incomplete:
        _print_base_prune(incomplete.result, as_json)
        raise  # then one line naming what is left, exit 2
    _print_base_prune(result, as_json)


def _print_base_prune(result: dict, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    verb = "would delete" if result["dry_run"] else "deleted"
    for base_id in result["pending"]:
        click.echo(f"{'would finish' if result['dry_run'] else 'finished'} deleting {base_id} "
                   "(an earlier prune's)")  # fmt: skip
    for base_id in result["delete"] if result["dry_run"] else result["deleted"]:
        click.echo(f"{verb} base backup {base_id}")
    for line in partial_lines(result):
        click.echo(line)
    for failure in result["failed"]:
        click.echo(f"could not delete {failure['path']}: {failure['error']}")
    for base_id in result["keep"]:
        click.echo(f"keep base backup {base_id}")
    for base_id, problem in result["left"].items():
        click.echo(f"left base backup {base_id} ({problem})")
    wal = result["wal"]
    if wal.get("skipped"):
        click.echo(f"WAL archive left as it is: {wal['skipped']}")
    elif wal["before_cut"]:
        done = wal["before_cut"] if result["dry_run"] else wal["removed"]
        click.echo(f"{verb} {done} WAL files of {wal['archive']} ({wal['first']}..{wal['last']}), "
                   f"all before {wal['cut']}, where {wal['oldest_kept']} starts")  # fmt: skip
    else:
        click.echo(f"no WAL in {wal['archive']} before {wal['cut']}, where {wal['oldest_kept']} "
                   "starts")  # fmt: skip


@click.command("archive-wal")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("name")
@click.option("--wal-dir", type=click.Path(path_type=Path), help=_WAL_HELP)
@friendly_errors
def archive_wal(path: Path, name: str, wal_dir: Path | None) -> None:
    """archive_command: copy WAL file PATH (%p) into the archive as NAME (%f), fsynced and
    linked into place; succeeds if an identical file is there, refuses a different one."""
    archive = wal_dir or settings_or_exit().wal_archive_dir
    archive_wal_file(path, name, archive)


@click.command()
@click.option("--to", "to", required=True, metavar="TIMESTAMP",
              help="ISO 8601 with a time zone, e.g. 2026-12-05T13:30:00+00:00.")  # fmt: skip
@click.option("--target", required=True, type=click.Path(path_type=Path),
              help="The data directory to create (must not exist, or be empty).")  # fmt: skip
@click.option("--base", "base_id", metavar="ID", help="This base backup (default: the latest "
              "that finished before --to).")  # fmt: skip
@click.option("--dir", "directory", type=click.Path(path_type=Path), help=_DIR_HELP)
@click.option("--wal-dir", type=click.Path(path_type=Path), help=_WAL_HELP)
@click.option("--start", is_flag=True, help="Start the recovered server and wait until it "
              "has reached --to and been promoted.")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=5433, show_default=True,
              help="The port the recovered server listens on (127.0.0.1 only; written "
              "into its postgresql.auto.conf, so it may run beside the source).")  # fmt: skip
@click.option("--os-user", help="With --start as root: the user that owns the target and "
              "runs the server (PostgreSQL refuses root), e.g. postgres.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(1), default=600.0, show_default=True,
              help="With --start: seconds to wait for the recovery.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def pitr(
    to: str,
    target: Path,
    base_id: str | None,
    directory: Path | None,
    wal_dir: Path | None,
    start: bool,
    port: int,
    os_user: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Point-in-time recovery: the latest base backup before --to, plus the archived WAL
    replayed up to --to, into a new data directory. Everything is checked first (the time,
    the base backup with pg_verifybackup, every WAL segment from the backup's start); on a
    refusal the target is untouched."""
    settings = settings_or_exit()
    done = recover_to_time(
        to,
        target,
        base_dir=(directory or settings.base_backup_dir).resolve(),
        wal_dir=(wal_dir or settings.wal_archive_dir).resolve(),
        bindir=settings.timbel_pg_bindir,
        base_id=base_id,
        start=start,
        port=port,
        os_user=os_user,
        timeout=timeout,
        progress=echo_for(True),  # progress on stderr, the result on stdout
    )
    if as_json:
        print_json(done)
        return
    wal = done["wal"]
    click.echo(
        f"recovered base backup {done['base']} into {done['target']} to {done['to']}: WAL "
        f"{wal['first']}..{wal['last']} ({wal['segments']} segments) checked"
    )
    if done["started"]:
        click.echo(
            f"running on 127.0.0.1:{done['port']}, promoted after {done['recovery_seconds']} s; "
            f"{done['recovery_stop'] or 'see ' + done['log']}"
        )
    else:
        # pg_ctl start -w returns once the server takes connections, which a hot standby
        # does while it still replays: reads then show the database part way to the moment.
        click.echo(
            f"start it with: pg_ctl start -D {done['target']} (as its owner); it listens on "
            f"127.0.0.1:{done['port']}. It replays WAL to the moment, then promotes: until "
            "`SELECT pg_is_in_recovery()` returns false there, what it shows is not yet the "
            "moment"
        )


COMMANDS = (base, bases, prune_bases, archive_wal, pitr)
