"""`timbel backup`: encrypted backups of the warehouse (docs/operations.md, "Backups")."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import echo_for, friendly_errors, print_json, settings_or_exit
from timbel_dagster.cli.tables import Column, print_table
from timbel_dagster.settings import Settings
from timbel_dagster.warehouse.backup.crypto import BackupKeys
from timbel_dagster.warehouse.backup.operations import (
    create_backup,
    list_backups,
    verify_backup,
)
from timbel_dagster.warehouse.backup.restore import restore_backup
from timbel_dagster.warehouse.backup.store import DirectoryStore
from timbel_dagster.warehouse.engine import check_connection


def _setup() -> tuple[Settings, DirectoryStore, BackupKeys]:
    settings = settings_or_exit()
    key = settings.timbel_backup_key
    keys = BackupKeys.from_setting(key.get_secret_value() if key else None)
    return settings, DirectoryStore(settings.backup_dir.resolve()), keys


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


@click.group()
def backup() -> None:
    """Encrypted backups of the warehouse: create, list, verify, restore."""


@backup.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def create(as_json: bool) -> None:
    """Back the warehouse up into TIMBEL_BACKUP_DIR (encrypted with TIMBEL_BACKUP_KEY) and
    record the audit log's head in the anchor file."""
    settings, store, keys = _setup()
    check_connection(settings.database_url)
    manifest = create_backup(
        settings.database_url,
        store,
        keys,
        anchor_file=settings.audit_anchor_file,
        actor=settings.timbel_user,
        progress=echo_for(True),  # progress on stderr, the result on stdout
    )
    if as_json:
        print_json(manifest | {"path": store.where(manifest["file"])})
    else:
        click.echo(
            f"backup {manifest['id']}: {len(manifest['tables'])} tables, {manifest['rows']} "
            f"rows, {_size(manifest['size'])} in {store.where(manifest['file'])}"
        )


@backup.command("list")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_(as_json: bool) -> None:
    """The backups in TIMBEL_BACKUP_DIR, oldest first (from their signed manifests)."""
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
@click.option("--force", is_flag=True, help="Restore over a target that holds tables.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def restore(backup_id: str, target: str, force: bool, as_json: bool) -> None:
    """Verify backup ID, restore it into --target, then check every table's row count
    against the backup's; on an error the target is left as it was."""
    _settings, store, keys = _setup()
    restored = restore_backup(
        store,
        keys,
        backup_id,
        target,
        force=force,
        progress=echo_for(True),  # progress on stderr, the result on stdout
    )
    if as_json:
        print_json(restored)
    else:
        click.echo(
            f"restored backup {backup_id} into {restored['target']}: "
            f"{len(restored['tables'])} tables, {restored['rows']} rows, counts match"
        )
