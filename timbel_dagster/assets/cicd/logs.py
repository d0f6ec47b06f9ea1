"""`cicd/execution_logs`: the whole logs of the day's finished builds that need one.

Builds followed live (`follow_build`) are stored already; this fills in the rest: by default
the failed and aborted builds (what people search logs for), or every finished build.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt

import dagster as dg

from timbel_dagster.assets.ingestion import OWNERS
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.partitions import DAILY, SINGLE_RUN
from timbel_dagster.resources.sources import DeliverySourcesResource

_WHICH = {"failed": ("failed", "aborted"), "all": ("success", "failed", "aborted")}


class ExecutionLogsConfig(dg.Config):
    which: str = "failed"  # failed (failed and aborted builds) | all finished builds
    max_logs: int = 500  # per run, so that a first backfill cannot run for hours


@dg.asset(
    key=["cicd", "execution_logs"],
    group_name="cicd",
    kinds={"jenkins", "gitlab", "sql"},
    owners=OWNERS,
    deps=[["cicd", "pipeline_executions"]],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    description="One row per log stream of an execution (console or job trace), stored in "
    "chunks of whole lines.",
)
def execution_logs(
    context: dg.AssetExecutionContext,
    config: ExecutionLogsConfig,
    warehouse: WarehouseResource,
    sources: DeliverySourcesResource,
):
    """Store the logs of finished executions of the partition range that have none yet."""
    # lazy: jobs.follow loads SQLAlchemy; the code location loads without it
    from timbel_dagster.jobs.follow import store_finished_log
    from timbel_dagster.warehouse.read.queries import executions_missing_logs

    if config.which not in _WHICH:
        raise ValueError(f"which must be one of {', '.join(_WHICH)}, not {config.which!r}")
    window = context.partition_time_window
    engine = warehouse.engine()
    with engine.connect() as connection:
        missing = executions_missing_logs(
            connection, window.start, window.end, _WHICH[config.which], config.max_logs
        )
    by_name = {source.name: source for source in sources.ci_sources()}
    stored = lines = 0
    skipped = []
    for source_name, pipeline, external_id, execution_id in missing:
        source = by_name.get(source_name)
        if source is None:
            skipped.append(source_name)
            continue
        report = store_finished_log(source, engine, execution_id, pipeline, external_id)
        stored, lines = stored + report.bytes_stored, lines + report.lines
    if skipped:
        context.log.warning(
            f"{len(skipped)} logs belong to sources not bound in this run: {sorted(set(skipped))}"
        )
    context.log.info(
        f"stored {len(missing) - len(skipped)} logs, {stored} bytes, {lines} lines "
        f"(started {window.start:%Y-%m-%d} to {window.end - dt.timedelta(days=1):%Y-%m-%d})"
    )
    return dg.MaterializeResult(
        metadata={
            "logs_stored": dg.MetadataValue.int(len(missing) - len(skipped)),
            "bytes_stored": dg.MetadataValue.int(stored),
            "lines_stored": dg.MetadataValue.int(lines),
            "rows_written": dg.MetadataValue.int(len(missing) - len(skipped)),
            "limit_reached": dg.MetadataValue.bool(len(missing) >= config.max_logs),
        }
    )
