"""`timbel backup`: encrypted backups of the warehouse (docs/operations.md, "Backups")."""

from __future__ import annotations

from pathlib import Path

import click

from timbel_dagster.cli.common import echo_for, friendly_errors, print_json, settings_or_exit
from timbel_dagster.cli.tables import Column, print_table
from timbel_dagster.settings import Settings
from timbel_dagster.warehouse.backup.basebackup import list_base_backups, take_base_backup
from timbel_dagster.warehouse.backup.configured import (
    backup_keys,
    dagster_database,
    open_store,
    orphan_age,
    retention_policy,
)
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupKeys
from timbel_dagster.warehouse.backup.operations import (
    create_backup,
    list_backups,
    verify_backup,
)
from timbel_dagster.warehouse.backup.pitr import recover_to_time
from timbel_dagster.warehouse.backup.restore import restore_backup
from timbel_dagster.warehouse.backup.retention import PruneIncomplete, prune_backups
from timbel_dagster.warehouse.backup.sources import backend
from timbel_dagster.warehouse.backup.store import BackupStore
from timbel_dagster.warehouse.backup.wal import archive_wal_file
from timbel_dagster.warehouse.engine import check_connection


def _setup() -> tuple[Settings, BackupStore, BackupKeys]:
    settings = settings_or_exit()
    keys = backup_keys(settings)  # first: every command refuses to run without the key
    return settings, open_store(settings), keys


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


@click.group()
def backup() -> None:
    """Encrypted backups of the warehouse: create, list, verify, restore, prune."""


@backup.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def create(as_json: bool) -> None:
    """Back the warehouse (and Dagster's database when it is PostgreSQL) up into
    TIMBEL_BACKUP_URL or TIMBEL_BACKUP_DIR, encrypted with TIMBEL_BACKUP_KEY, and record the
    audit log's head in the anchor file."""
    settings, store, keys = _setup()
    check_connection(settings.database_url)
    manifest = create_backup(
        settings.database_url,
        store,
        keys,
        anchor_file=settings.audit_anchor_file,
        actor=settings.timbel_user,
        progress=echo_for(True),  # progress on stderr, the result on stdout
        dagster_url=dagster_database(settings),
    )
    if as_json:
        print_json(manifest | {"path": store.where(manifest["file"])})
    else:
        click.echo(
            f"backup {manifest['id']}: {len(manifest['tables'])} tables, {manifest['rows']} "
            f"rows, {_size(manifest['size'])} in {store.where(manifest['file'])}"
            + (f"; Dagster's {manifest['dagster']['database']}: "
               f"{_size(manifest['dagster']['size'])}" if manifest.get("dagster") else "")
        )  # fmt: skip


@backup.command("list")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_(as_json: bool) -> None:
    """The backups in the store, oldest first (from their signed manifests)."""
    _settings, store, keys = _setup()
    found = list_backups(store, keys)
    if as_json:
        print_json(found)
        return
    print_table(
        found,
        [
            Column("ID", "id", cut=False),
            Column("CREATED", lambda b: (b.get("created_at") or "")[:19]),
            Column("SOURCE", lambda b: b.get("source") or ""),
            Column("DAGSTER", lambda b: "yes" if b.get("dagster") else ""),
            Column("ROWS", lambda b: b.get("rows", ""), justify="right"),
            Column("SIZE", lambda b: _size(b["size"]) if "size" in b else "", justify="right"),
            Column("PROBLEM", lambda b: b.get("problem") or "", wrap=True),
        ],
        empty=f"no backups in {store.where('')}",
    )


@backup.command()
@click.argument("backup_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def verify(backup_id: str, as_json: bool) -> None:
    """Decrypt and authenticate every chunk of backup ID and check its checksum, writing no
    plaintext anywhere; exit 2 naming the problem (wrong key, truncated, tampered)."""
    _settings, store, keys = _setup()
    checked = verify_backup(store, keys, backup_id, progress=echo_for(as_json))
    if as_json:
        print_json(checked | {"ok": True})
    else:
        click.echo(
            f"backup {backup_id} is intact: {_size(checked['verified_bytes'])} authenticated, "
            f"SHA-256 matches; {len(checked['tables'])} tables, {checked['rows']} rows"
        )


@backup.command()
@click.argument("backup_id", metavar="ID")
@click.option("--target", required=True, help="Database URL to restore into (sqlite:///PATH or "
              "postgresql://USER@HOST:PORT/DB); must be empty unless --force.")  # fmt: skip
@click.option("--dagster-target", help="PostgreSQL URL to restore the backup's Dagster "
              "database into (left out: only the warehouse is restored).")  # fmt: skip
@click.option("--force", is_flag=True, help="Restore over targets that hold tables.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def restore(
    backup_id: str, target: str, dagster_target: str | None, force: bool, as_json: bool
) -> None:
    """Verify backup ID, restore it into --target (and its Dagster database into
    --dagster-target), then check every table's row count and checksum against the backup's;
    a bad backup leaves the targets as they were."""
    _settings, store, keys = _setup()
    restored = restore_backup(
        store,
        keys,
        backup_id,
        target,
        force=force,
        progress=echo_for(True),  # progress on stderr, the result on stdout
        dagster_target=dagster_target,
    )
    if as_json:
        print_json(restored)
        return
    checked = "counts and checksums match" if restored["checksums"] else "counts match"
    click.echo(
        f"restored backup {backup_id} into {restored['target']}: "
        f"{len(restored['tables'])} tables, {restored['rows']} rows, {checked}"
    )
    if restored["dagster"]:
        click.echo(
            f"restored its Dagster database into {restored['dagster']['target']}: "
            f"{len(restored['dagster']['tables'])} tables, {restored['dagster']['rows']} rows"
        )
    elif restored["dagster_in_backup"]:
        click.echo("the backup also holds Dagster's database: --dagster-target URL restores it")


@backup.command()
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def prune(dry_run: bool, as_json: bool) -> None:
    """Delete the backups the retention does not keep (TIMBEL_BACKUP_KEEP_DAILY, _WEEKLY,
    _MONTHLY: the newest good backup of each of the last 7 days, 4 ISO weeks, 12 months
    that have one; never the newest good backup) and data no manifest lists any more (left
    by a delete or a backup that failed), never a backup's still being written."""
    settings, store, keys = _setup()
    try:
        result = prune_backups(
            store,
            keys,
            retention_policy(settings),
            database_url=settings.database_url,  # read only, with --dry-run
            actor=settings.timbel_user,
            dry_run=dry_run,
            orphan_age=orphan_age(settings),
        )
    except PruneIncomplete as incomplete:
        _print_prune(incomplete.result, as_json)
        raise  # then one line naming what is left, exit 2
    _print_prune(result, as_json)


def _print_prune(result: dict, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    verb = "would delete" if result["dry_run"] else "deleted"
    for backup_id in result["delete"] if result["dry_run"] else result["deleted"]:
        click.echo(f"{verb} {backup_id}")
    gone = set(result["orphans_deleted"])
    for orphan in result["orphans"]:
        if not orphan["delete"]:
            said = "left"
        elif result["dry_run"] or orphan["id"] in gone:
            said = verb
        else:
            continue  # its delete failed: the line below says so
        click.echo(f"{said} orphan {', '.join(orphan['files'])} ({orphan['why']})")
    for failure in result["failed"]:
        click.echo(f"could not delete {failure['file']}: {failure['error']}")
    for backup_id, why in sorted(result["keep"].items()):
        click.echo(f"keep {backup_id} ({', '.join(why)})")
    for backup_id in result["not_good"]:
        click.echo(f"left {backup_id} (its manifest fails its check: `timbel backup list`)")


# --- Point-in-time recovery (docs/operations.md, "Point-in-time recovery") ----------------
_DIR_HELP = "The base backups' directory (default TIMBEL_BASE_BACKUP_DIR)."
_WAL_HELP = "The WAL archive (default TIMBEL_WAL_ARCHIVE_DIR)."


@backup.command()
@click.option("--connection", help="The PostgreSQL server to back up, as a URL whose role has "
              "REPLICATION (default TIMBEL_DATABASE_URL).")  # fmt: skip
@click.option("--dir", "directory", type=click.Path(path_type=Path), help=_DIR_HELP)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def base(connection: str | None, directory: Path | None, as_json: bool) -> None:
    """Take a base backup of the whole PostgreSQL cluster with pg_basebackup (plain format,
    WAL streamed, SHA-256 manifest), check it with pg_verifybackup, and record where it
    starts in the WAL; the start of every `timbel backup pitr`."""
    settings = settings_or_exit()
    url = connection or settings.database_url
    if backend(url) != "postgresql":
        raise BackupError("base backups are of a PostgreSQL server: pass --connection URL")
    taken = take_base_backup(
        url,
        (directory or settings.base_backup_dir).resolve(),
        bindir=settings.timbel_pg_bindir,
        progress=echo_for(True),  # progress on stderr, the result on stdout
    )
    if as_json:
        print_json(taken)
    else:
        click.echo(
            f"base backup {taken['id']}: {_size(taken['size'])}, WAL from {taken['start_lsn']} "
            f"({taken['start_segment']}), finished {taken['finished_at'][:19]} UTC, verified; "
            f"in {taken['path']}"
        )


@backup.command()
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
            Column("SIZE", lambda b: _size(b["size"]) if "size" in b else "", justify="right"),
            Column("PROBLEM", lambda b: b.get("problem") or "", wrap=True),
        ],
        empty=f"no base backups in {where}",
    )


@backup.command("archive-wal")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("name")
@click.option("--wal-dir", type=click.Path(path_type=Path), help=_WAL_HELP)
@friendly_errors
def archive_wal(path: Path, name: str, wal_dir: Path | None) -> None:
    """archive_command: copy WAL file PATH (%p) into the archive as NAME (%f), fsynced and
    linked into place; succeeds if an identical file is there, refuses a different one."""
    archive = wal_dir or settings_or_exit().wal_archive_dir
    archive_wal_file(path, name, archive)


@backup.command()
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
        click.echo(
            f"start it with: pg_ctl start -D {done['target']} (as its owner); it listens on "
            f"127.0.0.1:{done['port']}"
        )
