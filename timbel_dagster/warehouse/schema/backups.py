"""The backup catalogue: one row per backup `timbel backup create` (or the `backup` job) made.

The store's signed manifests stay the truth about what a backup holds (`timbel backup list`
reads them); this table is what the warehouse knows of its own backups, for queries, the
retention (`pruned`) and the `backup_monitor` rules (`failed`). A backup does not hold its own
row: the row is written after the snapshot it was made from.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base


class BackupRecord(Base):
    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # 20261205T120000Z-kind-hex
    created_at: Mapped[dt.datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(16))  # postgresql | sqlite
    location: Mapped[str] = mapped_column(String(1024))  # where the store keeps the file
    size: Mapped[int] = mapped_column(BigInteger)  # ciphertext bytes, Dagster's file included
    sha256: Mapped[str] = mapped_column(String(64))  # of the ciphertext
    rows: Mapped[int] = mapped_column(BigInteger)
    tables: Mapped[dict[str, Any]]  # table -> row count, as in the manifest
    schema_revision: Mapped[str | None] = mapped_column(String(32))
    audit_head_id: Mapped[int | None] = mapped_column(Integer)
    audit_head_hash: Mapped[str | None] = mapped_column(String(64))
    # good | failed (no file: size 0, no tables; `error` says why) | pruning (the retention is
    # deleting it, or failed to delete some of its files: the next prune finishes) | pruned
    # (every file deleted from the store by the retention at `pruned_at`)
    status: Mapped[str] = mapped_column(String(16), server_default="good")
    error: Mapped[str | None] = mapped_column(Text)
    pruned_at: Mapped[dt.datetime | None]
