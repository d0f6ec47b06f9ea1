"""Pipelines, their executions and stages: `cicd/pipelines`, `cicd/pipeline_executions`,
`cicd/stage_executions`, read from every bound CI source in one transaction."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS, record_ingestion, upsert_metadata
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.resources.warehouse import WarehouseResource

_TABLES = ("pipelines", "pipeline_executions", "stage_executions")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["cicd", "pipelines"],
            group_name="cicd",
            kinds={"jenkins", "gitlab", "sql"},
            owners=OWNERS,
            description="One row per CI/CD pipeline (Jenkins job or GitLab project).",
        ),
        dg.AssetSpec(
            ["cicd", "pipeline_executions"],
            group_name="cicd",
            kinds={"jenkins", "gitlab", "sql"},
            owners=OWNERS,
            deps=[["cicd", "pipelines"]],
            description="One row per pipeline execution (build or pipeline run).",
        ),
        dg.AssetSpec(
            ["cicd", "stage_executions"],
            group_name="cicd",
            kinds={"jenkins", "gitlab", "sql"},
            owners=OWNERS,
            deps=[["cicd", "pipeline_executions"]],
            description="One row per stage (or job) attempt of a pipeline execution.",
        ),
    ],
)
def ci_executions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    """Ingest the window of executions from each CI source, stages included."""
    from timbel_dagster.warehouse.ingest import ingest_ci
    from timbel_dagster.warehouse.upsert import UpsertResult

    since, until = sources.window()
    context.log.info(
        f"Reading executions started in [{since:%Y-%m-%d %H:%M}, {until:%Y-%m-%d %H:%M}) UTC"
    )
    totals = {table: UpsertResult(table, 0, 0) for table in _TABLES}
    names = []
    for source in sources.ci_sources():
        with warehouse.begin() as connection:
            results = ingest_ci(connection, source, since, until)
            record_ingestion(connection, context, source.name, results)
        names.append(source.name)
        for table in _TABLES:
            totals[table] += results[table]
        context.log.info(
            f"{source.name}: "
            + ", ".join(f"{t} {r.written}/{r.offered} written" for t, r in results.items())
        )
    for table in _TABLES:
        yield dg.MaterializeResult(
            asset_key=["cicd", table], metadata=upsert_metadata(totals[table], ",".join(names))
        )
