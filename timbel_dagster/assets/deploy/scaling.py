"""`deploy/scaling_history`: what the autoscalers did, from their status and events."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dataclasses
import datetime as dt

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, markdown_table, upsert_metadata
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

KEY = ("source", "cluster", "namespace", "workload", "at", "reason")


class ScalingHistoryConfig(dg.Config):
    # ISO 8601 moment to read as of (default: now; UTC unless it says). The sample's history
    # is the 24 hours to the last completed hour before it: `timbel demo` pins it to its
    # cluster metrics' window, so one demo reads one window even across an hour boundary.
    at: str | None = None


def _as_of(text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"scaling_history config 'at': {text!r} is not an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


@dg.asset(
    key=["deploy", "scaling_history"],
    group_name="deploy",
    kinds={"kubernetes", "sql"},
    owners=OWNERS,
    description="One row per autoscaler state read (replicas current and desired, CPU "
    "utilisation) and per scaling event (SuccessfulRescale, failures) of a workload.",
)
def scaling_history(
    context: dg.AssetExecutionContext,
    config: ScalingHistoryConfig,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import ScalingRecord

    source = sources.scaling_source()
    found = source.rows(_as_of(config.at))
    rows = [
        {"id": stable_id("scaling_history", source.name, *(getattr(r, k) for k in KEY[1:])),
         "source": source.name, **dataclasses.asdict(r)}
        for r in found
    ]  # fmt: skip
    with warehouse.begin() as connection:
        result = bulk_upsert(connection, ScalingRecord.__table__, rows, KEY)
    rescales = [r for r in found if r.reason == "SuccessfulRescale"]
    context.log.info(f"{len(found)} scaling rows from {source.name}, {len(rescales)} rescales")
    return dg.MaterializeResult(
        metadata=upsert_metadata(result, source.name)
        | {
            "rescales": dg.MetadataValue.int(len(rescales)),
            "latest_rescales": markdown_table(
                [dataclasses.asdict(r) for r in sorted(rescales, key=lambda r: r.at)[-10:]],
                ["cluster", "workload", "at", "message"],
            ),
        }
    )
