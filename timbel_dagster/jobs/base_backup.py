"""Op job `base_backup`: the base backup `timbel backup base` takes of the warehouse's
PostgreSQL cluster, then `timbel backup prune-bases`, for the weekly schedule
(`base_backup_weekly`, sensors/backups.py: off until an operator turns it on, and skipping
while TIMBEL_BASE_BACKUP_DIR is unset).

It reads TIMBEL_BASE_BACKUP_DIR, TIMBEL_BASE_BACKUP_KEEP, TIMBEL_WAL_ARCHIVE_DIR,
TIMBEL_BACKUP_ORPHAN_HOURS and TIMBEL_PG_BINDIR from the settings of the process that runs it
(the run worker, which needs pg_basebackup and pg_verifybackup, and the WAL archive mounted to
prune it): set them there. The cluster is the warehouse's (TIMBEL_DATABASE_URL), whose role
needs REPLICATION. Each base backup is audited as `backup.base` (or `backup.base_fail`), each
prune as `backup.base_prune` (with the copies a killed run abandoned that it deleted), in the
warehouse once the copy has finished.
"""

# No `from __future__ import annotations`: Dagster reads the op's annotations.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.run_actor import note_unverified, run_actor


def _log_prune(context: dg.OpExecutionContext, result: dict) -> None:
    # lazy: the code location loads without the backup modules
    from timbel_dagster.warehouse.backup.base_retention import partial_lines

    for base_id in result["pending"] + result["deleted"]:
        context.log.info(f"pruned base backup {base_id} (keeping the newest {len(result['keep'])})")
    for line in partial_lines(result):
        context.log.info(line)
    wal = result["wal"]
    if wal.get("skipped"):
        context.log.info(f"WAL archive left as it is: {wal['skipped']}")
    elif wal["removed"]:
        context.log.info(
            f"removed {wal['removed']} WAL files ({wal['first']}..{wal['last']}) before "
            f"{wal['cut']}, where {wal['oldest_kept']} starts"
        )
    for failure in result["failed"]:
        context.log.warning(f"could not delete {failure['path']}: {failure['error']}")


@dg.op(
    name="base_backup_cluster",
    description="Take a base backup of the warehouse's PostgreSQL cluster (pg_basebackup, "
    "checked with pg_verifybackup) into TIMBEL_BASE_BACKUP_DIR, then keep the newest "
    "TIMBEL_BASE_BACKUP_KEEP and remove the archived WAL before the oldest one kept.",
)
def base_backup_cluster(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> dict:
    # lazy: the backup modules load SQLAlchemy and psycopg when they run; the code location
    # loads without them
    from timbel_dagster.settings import get_settings
    from timbel_dagster.warehouse.backup.base_record import take_recorded_base_backup
    from timbel_dagster.warehouse.backup.base_retention import prune_base_backups
    from timbel_dagster.warehouse.backup.configured import orphan_age
    from timbel_dagster.warehouse.backup.crypto import BackupError
    from timbel_dagster.warehouse.backup.retention import PruneIncomplete
    from timbel_dagster.warehouse.backup.sources import backend

    settings = get_settings()
    actor = run_actor(context.run.tags)
    note_unverified(context.log, actor)
    url = warehouse.url()
    if backend(url) != "postgresql":
        raise BackupError(
            "base backups are of a PostgreSQL server, and the warehouse (TIMBEL_DATABASE_URL) "
            "is SQLite: back it up with the `backup` job"
        )
    directory = settings.base_backup_dir.resolve()
    taken = take_recorded_base_backup(
        url, directory, bindir=settings.timbel_pg_bindir, database_url=url, actor=actor.name,
        progress=context.log.info,
    )  # fmt: skip
    # Only after a good base backup: one that failed never costs an old one.
    try:
        pruned = prune_base_backups(
            directory, settings.wal_archive_dir.resolve(), settings.timbel_base_backup_keep,
            database_url=url, actor=actor.name, orphan_age=orphan_age(settings),
        )  # fmt: skip
    except PruneIncomplete as incomplete:
        # The base backup is good and stays; the run fails so that a delete that keeps
        # failing is seen, and the next prune finishes what is left.
        _log_prune(context, incomplete.result)
        raise
    _log_prune(context, pruned)
    wal = pruned["wal"]
    context.add_output_metadata(
        {
            "base_backup": taken["id"],
            "path": taken["path"],
            "bytes": taken["size"],
            "start_lsn": taken["start_lsn"],
            "start_segment": taken["start_segment"],
            "finished_at": taken["finished_at"],
            "audited": taken["audited"],
            "kept": len(pruned["keep"]),
            "pruned": len(pruned["pending"] + pruned["deleted"]),
            "abandoned_copies_deleted": len(pruned["partials_deleted"]),
            "wal_removed": wal.get("removed", 0),
            "wal": wal.get("skipped") or f"removed before {wal['cut']}",
        }
    )
    return {key: taken[key] for key in ("id", "path", "size", "start_lsn", "start_segment")} | {
        "pruned": pruned["pending"] + pruned["deleted"],
        "abandoned_copies_deleted": [
            {key: p[key] for key in ("id", "age_hours", "why")}
            for p in pruned["partials"] if p["id"] in pruned["partials_deleted"]
        ],
        "wal_removed": wal.get("removed", 0),
    }  # fmt: skip


@dg.job(
    name="base_backup",
    # One at a time in the run queue (tag_concurrency_limits, deploy/helm/values.yaml): a
    # second copy of the whole cluster would double the load for nothing, and the two
    # retentions would cut the WAL archive against each other's base backups.
    tags={"timbel/kind": "base_backup"},
    description="A base backup of the warehouse's PostgreSQL cluster for point-in-time "
    "recovery (`timbel backup base`) and the base backups' retention (`timbel backup "
    "prune-bases`), weekly once its schedule is on.",
)
def base_backup() -> None:
    base_backup_cluster()
