"""`timbel backup`: encrypted backups of the warehouse (docs/operations.md, "Backups")."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import echo_for, friendly_errors, print_json, settings_or_exit
from timbel_dagster.cli.tables import Column, print_table
from timbel_dagster.settings import Settings
from timbel_dagster.warehouse.backup.configured import (
    backup_keys,
    dagster_database,
    open_store,
    orphan_age,
    retention_policy,
)
from timbel_dagster.warehouse.backup.crypto import BackupKeys
from timbel_dagster.warehouse.backup.operations import (
    create_backup,
    list_backups,
    verify_backup,
)
from timbel_dagster.warehouse.backup.restore import restore_backup
from timbel_dagster.warehouse.backup.retention import (
    PruneIncomplete,
    prune_backups,
    prune_warnings,
    upload_lines,
)
from timbel_dagster.warehouse.backup.store import BackupStore
from timbel_dagster.warehouse.engine import check_connection


def _setup() -> tuple[Settings, BackupStore, BackupKeys]:
    settings = settings_or_exit()
    keys = backup_keys(settings)  # first: every command refuses to run without the key
    return settings, open_store(settings), keys


def size_text(n: int) -> str:
    """`1.5 MiB`, `12.0 KiB`."""
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


@click.group()
def backup() -> None:
    """Encrypted backups of the warehouse: create, list, verify, restore, prune; base backups
    and point-in-time recovery of its PostgreSQL cluster."""


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
            f"rows, {size_text(manifest['size'])} in {store.where(manifest['file'])}"
            + (f"; Dagster's {manifest['dagster']['database']}: "
               f"{size_text(manifest['dagster']['size'])}" if manifest.get("dagster") else "")
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
            Column("SIZE", lambda b: size_text(b["size"]) if "size" in b else "", justify="right"),
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
            f"backup {backup_id} is intact: {size_text(checked['verified_bytes'])} authenticated, "
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
@click.option(
    "--dry-run", is_flag=True, help="Show what would be deleted or aborted; change nothing."
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def prune(dry_run: bool, as_json: bool) -> None:
    """Delete the backups the retention does not keep (TIMBEL_BACKUP_KEEP_DAILY, _WEEKLY,
    _MONTHLY: the newest good backup of each of the last 7 days, 4 ISO weeks, 12 months
    that have one; never the newest good backup), data no manifest lists any more (left
    by a delete or a backup that failed) and uploads a killed backup never completed (an S3
    multipart upload), never a backup's still being written."""
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
    for warning in prune_warnings(result):
        click.echo(warning, err=True)  # on stderr: also beside --json
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
    for line in upload_lines(result):
        click.echo(line)
    for failure in result["failed"]:
        click.echo(f"could not delete {failure['file']}: {failure['error']}")
    for backup_id, why in sorted(result["keep"].items()):
        click.echo(f"keep {backup_id} ({', '.join(why)})")
    for backup_id in result["not_good"]:
        click.echo(f"left {backup_id} (its manifest fails its check: `timbel backup list`)")
