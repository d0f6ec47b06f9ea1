"""The backup machinery as the settings configure it, for the `timbel backup` commands and
the `backup` job alike: the store, the keys, Dagster's database and the retention policy."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from timbel_dagster.settings.dagster_storage import DagsterStorageError, dagster_postgres_url
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupKeys
from timbel_dagster.warehouse.backup.retention import Policy
from timbel_dagster.warehouse.backup.s3 import S3Store
from timbel_dagster.warehouse.backup.store import BackupStore, DirectoryStore

if TYPE_CHECKING:
    from timbel_dagster.settings import Settings


def open_store(settings: Settings) -> BackupStore:
    """TIMBEL_BACKUP_URL's S3 store when it is set, else the directory TIMBEL_BACKUP_DIR."""
    if settings.timbel_backup_url:
        return S3Store(
            settings.timbel_backup_url,
            endpoint_url=settings.timbel_backup_s3_endpoint_url,
            region=settings.timbel_backup_s3_region,
        )
    return DirectoryStore(settings.backup_dir.resolve())


def backup_keys(settings: Settings) -> BackupKeys:
    key = settings.timbel_backup_key
    return BackupKeys.from_setting(key.get_secret_value() if key else None)


def dagster_database(settings: Settings) -> str | None:
    """The URL of Dagster's own database to back up beside the warehouse: its PostgreSQL
    storage in DAGSTER_HOME/dagster.yaml, unless TIMBEL_BACKUP_DAGSTER_STORAGE is false."""
    if not settings.timbel_backup_dagster_storage:
        return None
    try:
        return dagster_postgres_url(settings.dagster_home)
    except DagsterStorageError as error:
        raise BackupError(
            f"Dagster's database: {error} (or set TIMBEL_BACKUP_DAGSTER_STORAGE=false)"
        ) from None


def retention_policy(settings: Settings) -> Policy:
    return Policy(
        daily=settings.timbel_backup_keep_daily,
        weekly=settings.timbel_backup_keep_weekly,
        monthly=settings.timbel_backup_keep_monthly,
    )


def orphan_age(settings: Settings) -> dt.timedelta:
    """How old a backup's data without a manifest or a catalogue row must be before a prune
    deletes it (orphans.find_orphans)."""
    return dt.timedelta(hours=settings.timbel_backup_orphan_hours)
