"""`ops/backups`: the state of the backup catalogue, as metadata (nothing new is stored).

The `backup` job records a materialization of it after every backup, good or failed, and it
can be materialized by hand to see the catalogue now: when the last good backup was made, its
size, how many good backups the store keeps, and how many failed in the last 24 hours.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS
from timbel_dagster.bindings.warehouse import WarehouseResource

BACKUPS_KEY = dg.AssetKey(["ops", "backups"])


def catalogue_metadata(engine, now: dt.datetime) -> dict:
    """The catalogue's state as the asset's metadata; `catalogue` says `missing` in a
    warehouse older than revision 0025."""
    # lazy: the catalogue module loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.backup.catalogue import catalogue_state

    with engine.connect() as connection:
        state = catalogue_state(connection, now)
    if state is None:
        return {"catalogue": "missing (run `timbel db upgrade`)"}
    metadata = state.metadata(now)
    return {
        **metadata,
        "last_good_bytes": dg.MetadataValue.int(metadata["last_good_bytes"]),
        "good_backups": dg.MetadataValue.int(metadata["good_backups"]),
        "failed_last_24h": dg.MetadataValue.int(metadata["failed_last_24h"]),
        "last_good_age_hours": dg.MetadataValue.float(metadata["last_good_age_hours"]),
    }


@dg.asset(
    key=BACKUPS_KEY,
    group_name="ops",
    kinds={"sql"},
    owners=OWNERS,
    description="One summary of the backup catalogue: the last good backup (when, its size), "
    "the good backups kept and the backups that failed in the last 24 hours.",
)
def backups(warehouse: WarehouseResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata=catalogue_metadata(warehouse.engine(), dt.datetime.now(dt.UTC))
    )
