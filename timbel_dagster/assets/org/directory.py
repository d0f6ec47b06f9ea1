"""Who works here and where things run: `org/users` and `org/clusters`."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, ingest_directory, ingest_each, table_metadata
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["org", "users"],
            group_name="org",
            kinds={"sql"},
            owners=OWNERS,
            description="One row per person who acts in Timbel, with role and team.",
        ),
        dg.AssetSpec(
            ["org", "clusters"],
            group_name="org",
            kinds={"kubernetes", "sql"},
            owners=OWNERS,
            description="One row per Kubernetes cluster, with its environment group.",
        ),
    ],
)
def directory(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    """Store the people and clusters of the bound delivery-history sources."""

    totals, names = ingest_each(
        context, warehouse, sources.history_sources(warehouse.stored_stages), ingest_directory
    )
    for table in ("users", "clusters"):
        yield dg.MaterializeResult(
            asset_key=["org", table], metadata=table_metadata(totals, table, names)
        )
