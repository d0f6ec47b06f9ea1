"""Storage's side of ingestion: what was read from a source, written on the caller's
connection in dependency order (parents before the rows that link to them), so the caller's
transaction decides what is committed together.

Storage takes records and never a client (DESIGN 1b): the reading, from a CI server over
HTTP or from a source that answers from memory, is done by the caller in
`timbel_dagster/assets/ingestion.py` (`read_pipelines`/`read_executions`/`read_ci` before the
transaction, `ingest_*` on the caller's connection), which hands the records to `store_ci`
here or to the loaders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timbel_dagster.records.delivery import (
    CIRead,
    ExecutionRecord,
    PipelineRecord,
    RejectRecord,
)
from timbel_dagster.warehouse.store import loaders
from timbel_dagster.warehouse.store.rejects import store_rejects
from timbel_dagster.warehouse.store.upsert import UpsertResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

Results = dict[str, UpsertResult]


def _split(
    read: list[PipelineRecord | RejectRecord] | list[ExecutionRecord | RejectRecord],
) -> tuple[list, list[RejectRecord]]:
    return (
        [r for r in read if not isinstance(r, RejectRecord)],
        [r for r in read if isinstance(r, RejectRecord)],
    )


def store_ci(connection: Connection, source: str, read: CIRead) -> Results:
    """Write what `read_*` returned for `source` on the caller's connection: pipelines first,
    then executions (with stages), each part's rejects in `ingestion_rejects`."""
    results: Results = {}
    if read.pipelines is not None:
        pipelines, rejects = _split(read.pipelines)
        results = {
            "pipelines": loaders.store_pipelines(connection, source, pipelines),
            "ingestion_rejects": store_rejects(connection, source, rejects),
        }
    if read.executions is not None:
        records, rejects = _split(read.executions)
        executions, stages = loaders.store_executions(connection, source, records)
        rejected = store_rejects(connection, source, rejects)
        if "ingestion_rejects" in results:
            rejected = results["ingestion_rejects"] + rejected
        results = results | {
            "pipeline_executions": executions,
            "stage_executions": stages,
            "ingestion_rejects": rejected,
        }
    return results
