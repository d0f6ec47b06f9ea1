"""Op job `backup`: the backup `timbel backup create` makes, then `timbel backup prune`, for
the nightly schedule (`backup_nightly`, sensors/backups.py, off until an operator turns it on).

It reads TIMBEL_BACKUP_KEY, TIMBEL_BACKUP_URL or TIMBEL_BACKUP_DIR, the retention counts and
TIMBEL_AUDIT_ANCHOR_FILE from the settings of the process that runs it (the run worker): set
them there. Every run records a materialization of `ops/backups` (the catalogue's state),
also when the backup failed: the failure is in the catalogue, where the `backup_monitor`
rules see it.
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import datetime as dt

import dagster as dg

from timbel_dagster.assets.ops.backups import BACKUPS_KEY, catalogue_metadata
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.run_actor import note_unverified, run_actor


def _record_catalogue(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    context.log_event(
        dg.AssetMaterialization(
            asset_key=BACKUPS_KEY,
            metadata=catalogue_metadata(warehouse.engine(), dt.datetime.now(dt.UTC)),
        )
    )


def _log_prune(context: dg.OpExecutionContext, result: dict) -> None:
    # lazy: as in the op, the code location loads without the backup modules' libraries
    from timbel_dagster.warehouse.backup.retention import prune_warnings, upload_lines

    for backup_id in result["deleted"]:
        context.log.info(f"pruned backup {backup_id} (retention)")
    for orphan in result["orphans"]:
        done = "deleted" if orphan["id"] in result["orphans_deleted"] else "left"
        context.log.info(f"{done} orphan {', '.join(orphan['files'])} ({orphan['why']})")
    for line in upload_lines(result):
        context.log.info(line)
    for failure in result["failed"]:
        context.log.warning(f"could not delete {failure['file']}: {failure['error']}")
    for warning in prune_warnings(result):
        context.log.warning(warning)


@dg.op(
    name="backup_warehouse",
    description="Back the warehouse (and Dagster's PostgreSQL database) up, encrypted, into "
    "the backup store, record the audit log's head in the anchor file, then prune the backups "
    "the retention does not keep.",
)
def backup_warehouse(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> dict:
    # lazy: the backup modules load `cryptography`, boto3 and SQLAlchemy when they run; the
    # code location loads without them
    from timbel_dagster.settings import get_settings
    from timbel_dagster.warehouse.backup.configured import (
        backup_keys,
        dagster_database,
        open_store,
        orphan_age,
        retention_policy,
    )
    from timbel_dagster.warehouse.backup.operations import (
        create_backup,
        record_preflight_failure,
    )
    from timbel_dagster.warehouse.backup.retention import PruneIncomplete, prune_backups

    settings = get_settings()
    actor = run_actor(context.run.tags)
    note_unverified(context.log, actor)
    try:
        keys = backup_keys(settings)
        store = open_store(settings)
        dagster_url = dagster_database(settings)
    except Exception as error:
        record_preflight_failure(warehouse.url(), actor.name, error)
        _record_catalogue(context, warehouse)
        raise
    try:
        manifest = create_backup(
            warehouse.url(),
            store,
            keys,
            anchor_file=settings.audit_anchor_file,
            actor=actor.name,
            progress=context.log.info,
            dagster_url=dagster_url,
        )
    except Exception:
        # The failed row is in the catalogue (create_backup wrote it); record the state the
        # monitor will read, then fail the run with the backup's own error.
        _record_catalogue(context, warehouse)
        raise
    # Only after a good backup: a failing backup never costs an old one.
    try:
        pruned = prune_backups(
            store, keys, retention_policy(settings), database_url=warehouse.url(),
            actor=actor.name, orphan_age=orphan_age(settings),
        )  # fmt: skip
    except PruneIncomplete as incomplete:
        # The backup is good; what could not be deleted is remembered and retried by the next
        # prune. The run fails all the same, so that a delete that keeps failing is seen.
        _log_prune(context, incomplete.result)
        _record_catalogue(context, warehouse)
        raise
    _log_prune(context, pruned)
    _record_catalogue(context, warehouse)
    context.add_output_metadata(
        {
            "backup": manifest["id"],
            "path": store.where(manifest["file"]),
            "rows": manifest["rows"],
            "bytes": manifest["size"],
            "sha256": manifest["sha256"],
            "dagster_database": (manifest.get("dagster") or {}).get("database") or "none",
            "pruned": len(pruned["deleted"]),
            "orphans_deleted": len(pruned["orphans_deleted"]),
            "uploads_aborted": len(pruned["uploads_aborted"]),
        }
    )
    return {k: manifest[k] for k in ("id", "file", "sha256", "size", "rows", "tables")} | {
        "pruned": pruned["deleted"]
    }


@dg.job(
    name="backup",
    # One at a time in the run queue (tag_concurrency_limits, deploy/helm/values.yaml): two
    # runs would prune the same catalogue side by side, each deleting what the other keeps.
    tags={"timbel/kind": "backup"},
    description="An encrypted backup of the warehouse (`timbel backup create`) and the "
    "retention (`timbel backup prune`), nightly once its schedule is on.",
)
def backup() -> None:
    backup_warehouse()
