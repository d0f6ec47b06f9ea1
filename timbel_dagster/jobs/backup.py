"""Op job `backup`: the backup `timbel backup create` makes, for the nightly schedule
(`backup_nightly`, sensors/backups.py, off until an operator turns it on).

It reads TIMBEL_BACKUP_KEY, TIMBEL_BACKUP_DIR and TIMBEL_AUDIT_ANCHOR_FILE from the settings of
the process that runs it (the run worker): set them there. Retention, an S3-compatible store
and the `backup_monitor` sensor come later (docs/operations.md, "Backups").
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.run_actor import note_unverified, run_actor


@dg.op(
    name="backup_warehouse",
    description="Back the warehouse up, encrypted, into TIMBEL_BACKUP_DIR and record the "
    "audit log's head in the anchor file.",
)
def backup_warehouse(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> dict:
    # lazy: the backup modules load `cryptography` and SQLAlchemy when they run; the code
    # location loads without them
    from timbel_dagster.settings import get_settings
    from timbel_dagster.warehouse.backup.crypto import BackupKeys
    from timbel_dagster.warehouse.backup.operations import create_backup
    from timbel_dagster.warehouse.backup.store import DirectoryStore

    settings = get_settings()
    key = settings.timbel_backup_key
    keys = BackupKeys.from_setting(key.get_secret_value() if key else None)
    actor = run_actor(context.run.tags)
    note_unverified(context.log, actor)
    store = DirectoryStore(settings.backup_dir.resolve())
    manifest = create_backup(
        warehouse.url(),
        store,
        keys,
        anchor_file=settings.audit_anchor_file,
        actor=actor.name,
        progress=context.log.info,
    )
    context.add_output_metadata(
        {
            "backup": manifest["id"],
            "path": store.where(manifest["file"]),
            "rows": manifest["rows"],
            "bytes": manifest["size"],
            "sha256": manifest["sha256"],
        }
    )
    return {k: manifest[k] for k in ("id", "file", "sha256", "size", "rows", "tables")}


@dg.job(
    name="backup",
    description="An encrypted backup of the warehouse (`timbel backup create`), nightly once "
    "its schedule is on.",
)
def backup() -> None:
    backup_warehouse()
