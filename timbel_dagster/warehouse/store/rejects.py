"""Store what a source sent that could not be parsed, once per record, in `ingestion_rejects`.

A reject read again (the next run over the same window) is the same row: its natural key is
(source, kind, pipeline, key). Its `last_seen` moves and `times_seen` counts the runs that
read it; `first_seen` keeps the first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.delivery import RejectRecord
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.ingestion import IngestionReject
from timbel_dagster.warehouse.store.upsert import UpsertResult, bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

TABLE = "ingestion_rejects"
_KEY = ("source", "kind", "pipeline", "key")


def _fitting(key: str) -> str:
    """A key longer than the column (a long job name) is kept as its digest."""
    return (
        key
        if len(key) <= 128
        else "sha1:" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()
    )


def payload_text(payload: Any) -> str:
    """The payload as JSON text (what cannot be JSON, as its repr inside a JSON string)."""
    return json.dumps(payload, ensure_ascii=False, default=repr)


def store_rejects(
    connection: Connection,
    source: str,
    rejects: Sequence[RejectRecord],
    now: dt.datetime | None = None,
) -> UpsertResult:
    """Upsert the rejects of one batch on the caller's connection (its transaction).

    Returns:
        `offered`: the rejects of this batch (each record once); `written`: rows new or
        changed.
    """
    from sqlalchemy import select, tuple_

    if not rejects:
        return UpsertResult(TABLE, 0, 0)
    seen = now or dt.datetime.now(dt.UTC)
    unique = {(source, r.kind, r.pipeline, _fitting(r.key)): r for r in rejects}
    table = IngestionReject.__table__
    stored: dict[tuple, tuple[dt.datetime, int]] = {}
    keys = list(unique)
    for start in range(0, len(keys), 500):
        query = select(*(table.c[k] for k in _KEY), table.c.first_seen, table.c.times_seen).where(
            tuple_(*(table.c[k] for k in _KEY)).in_(keys[start : start + 500])
        )
        for *key, first, times in connection.execute(query):
            stored[tuple(key)] = (first, times)
    rows = []
    for key, r in unique.items():
        first, times = stored.get(key, (seen, 0))
        rows.append(
            {
                "id": stable_id(TABLE, *key),
                "source": source,
                "kind": r.kind,
                "pipeline": r.pipeline,
                "key": key[3],
                "sequence": r.sequence,
                "reason": r.reason,
                "payload": payload_text(r.payload),
                "first_seen": first,
                "last_seen": seen,
                "times_seen": times + 1,
            }
        )
    result = bulk_upsert(connection, table, rows, list(_KEY))
    return UpsertResult(TABLE, len(rows), result.written)
