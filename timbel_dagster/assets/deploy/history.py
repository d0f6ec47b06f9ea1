"""What shipped and what broke: `deploy/deployments`, `deploy/incidents` (commits are
`cicd/commits`, stored first so that deployments link to them)."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, ingest_deployments, ingest_each, table_metadata
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource


@dg.multi_asset(
    specs=[
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
    """Ingest deployments and incidents of the window, one transaction per source."""

    since, until = sources.window()
    totals, names = ingest_each(
        context,
        warehouse,
        sources.history_sources(warehouse.stored_stages),
        lambda connection, source: ingest_deployments(connection, source, since, until),
    )
    deployments = table_metadata(totals, "deployments", names)
    deployments["commit_links_written"] = dg.MetadataValue.int(
        table_metadata(totals, "deployment_commits", names)["rows_written"].value
    )
    yield dg.MaterializeResult(asset_key=["deploy", "deployments"], metadata=deployments)
    yield dg.MaterializeResult(
        asset_key=["deploy", "incidents"], metadata=table_metadata(totals, "incidents", names)
    )
