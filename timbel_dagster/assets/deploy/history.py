"""What shipped and what broke: `cicd/commits`, `deploy/deployments`, `deploy/incidents`."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, record_ingestion, upsert_metadata
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.resources.warehouse import WarehouseResource


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["cicd", "commits"],
            group_name="cicd",
            kinds={"git", "sql"},
            owners=OWNERS,
            description="One row per commit, with Kamei's change metrics.",
        ),
        dg.AssetSpec(
            ["deploy", "deployments"],
            group_name="deploy",
            kinds={"kubernetes", "sql"},
            owners=OWNERS,
            deps=[["cicd", "commits"], ["cicd", "pipeline_executions"]],
            description="One row per deployment of a service to a cluster, with the "
            "commits it shipped.",
        ),
        dg.AssetSpec(
            ["deploy", "incidents"],
            group_name="deploy",
            kinds={"sql"},
            owners=OWNERS,
            deps=[["deploy", "deployments"]],
            description="One row per production incident, with the deployment that "
            "caused it and the one that restored service.",
        ),
    ],
)
def delivery_history(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    """Ingest commits, deployments and incidents of the window in one transaction."""
    from timbel_dagster.warehouse.ingest import ingest_delivery_history

    source = sources.history_source()
    since, until = sources.window()
    with warehouse.begin() as connection:
        results = ingest_delivery_history(connection, source, since, until)
        record_ingestion(connection, context, source.name, results)
    yield dg.MaterializeResult(
        asset_key=["cicd", "commits"], metadata=upsert_metadata(results["commits"], source.name)
    )
    deployments = upsert_metadata(results["deployments"], source.name)
    deployments["commit_links_written"] = dg.MetadataValue.int(
        results["deployment_commits"].written
    )
    yield dg.MaterializeResult(asset_key=["deploy", "deployments"], metadata=deployments)
    yield dg.MaterializeResult(
        asset_key=["deploy", "incidents"],
        metadata=upsert_metadata(results["incidents"], source.name),
    )
