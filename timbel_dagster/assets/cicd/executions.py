"""`cicd/pipelines`, and `cicd/pipeline_executions` with `cicd/stage_executions` by day.

Executions are partitioned by the UTC day they started. A run over a range of days (one run
per range: backfills are one run) also re-reads `lookback_days` before it, so that builds still
running at the last read are completed; finished builds are final and cost no detail reads.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.assets.ingestion import (
    OWNERS,
    count_rejected,
    read_executions,
    read_pipelines,
    read_then_write_each,
    table_metadata,
)
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.partitions import DAILY, SINGLE_RUN
from timbel_dagster.resources.sources import DeliverySourcesResource

_CI_KINDS = {"jenkins", "gitlab", "sql"}
CI_SYSTEMS_TAG = "timbel/ci_systems"


class ExecutionWindowConfig(dg.Config):
    lookback_days: int = 1  # days before the partition range re-read for in-flight builds


@dg.asset(
    key=["cicd", "pipelines"],
    group_name="cicd",
    kinds=_CI_KINDS,
    owners=OWNERS,
    description="One row per CI/CD pipeline (Jenkins job or GitLab project).",
)
def pipelines(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    """Store the pipelines of every bound CI source (each read before its transaction)."""
    # lazy: warehouse.store.ingest loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.store.ingest import store_ci

    totals, names = read_then_write_each(
        context,
        warehouse,
        sources.ci_sources(),
        lambda _engine, source: read_pipelines(source),
        store_ci,
    )
    metadata = table_metadata(totals, "pipelines", names)
    # entries of the job list kept in `ingestion_rejects` instead
    metadata["rows_rejected"] = dg.MetadataValue.int(count_rejected(context, totals))
    return dg.MaterializeResult(metadata=metadata)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["cicd", "pipeline_executions"],
            group_name="cicd",
            kinds=_CI_KINDS,
            owners=OWNERS,
            deps=[["cicd", "pipelines"]],
            description="One row per pipeline execution (build or pipeline run).",
        ),
        dg.AssetSpec(
            ["cicd", "stage_executions"],
            group_name="cicd",
            kinds=_CI_KINDS,
            owners=OWNERS,
            deps=[["cicd", "pipeline_executions"]],
            description="One row per stage (or job) attempt of a pipeline execution.",
        ),
    ],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
)
def ci_executions(
    context: dg.AssetExecutionContext,
    config: ExecutionWindowConfig,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    """Ingest the executions that started in the partition range, from each CI source: all
    of a source's range is read, then written in one transaction."""
    # lazy: warehouse.store.ingest loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.store.ingest import store_ci

    window = context.partition_time_window
    since = window.start - dt.timedelta(days=config.lookback_days)
    until = window.end
    context.log.info(f"Reading executions started in [{since:%Y-%m-%d}, {until:%Y-%m-%d}) UTC")
    # A build sensor names the one system whose new builds the run is for.
    only = context.run.tags.get(CI_SYSTEMS_TAG)
    chosen = sources.ci_sources(only.split(",") if only else None)
    totals, names = read_then_write_each(
        context,
        warehouse,
        chosen,
        lambda engine, source: read_executions(engine, source, since, until),
        store_ci,
    )
    requests = sum(getattr(source, "requests_made", 0) for source in chosen)
    rejected = count_rejected(context, totals)
    for table in ("pipeline_executions", "stage_executions"):
        metadata = table_metadata(totals, table, names)
        metadata["source_requests"] = dg.MetadataValue.int(requests)
        # records of the batch kept in `ingestion_rejects` instead (builds, stage lists, ...)
        metadata["rows_rejected"] = dg.MetadataValue.int(rejected)
        yield dg.MaterializeResult(asset_key=["cicd", table], metadata=metadata)
