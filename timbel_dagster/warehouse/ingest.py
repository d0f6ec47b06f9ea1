"""Ingestion of a window of source data: what both the assets and `timbel sample` run.

Each `ingest_*` function stores one source's records for [since, until) in dependency order
(parents before the rows that link to them) on the caller's connection, so the caller's
transaction decides what is committed together.

A CI server is asked over HTTP, and no HTTP call runs inside an open transaction (DESIGN 1b):
the assets read it first with `read_pipelines`/`read_executions`/`read_ci` (the warehouse
only through a short read connection, closed before the server is asked), then write what
was read with `store_ci` in one transaction. `ingest_pipelines`/`ingest_executions`/
`ingest_ci` do both on the caller's connection, for sources that answer from memory (the
sample, `timbel sample`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord, RejectRecord
from timbel_dagster.warehouse import loaders
from timbel_dagster.warehouse.queries import finished_executions
from timbel_dagster.warehouse.rejects import store_rejects
from timbel_dagster.warehouse.upsert import UpsertResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from timbel_dagster.resources.delivery import CISource, DeliveryHistorySource

Results = dict[str, UpsertResult]


@dataclass(frozen=True)
class CIRead:
    """What one CI source returned for a run, rejects included, read before the transaction
    that `store_ci` writes it in. `None`: that part was not read."""

    pipelines: list[PipelineRecord | RejectRecord] | None = None
    executions: list[ExecutionRecord | RejectRecord] | None = None


def read_pipelines(source: CISource) -> CIRead:
    """The source's pipelines and the entries of its job list it could not parse."""
    return CIRead(pipelines=list(source.pipelines()))


def _executions(
    source: CISource, since: dt.datetime, until: dt.datetime, final: frozenset[tuple[str, str]]
) -> CIRead:
    # Memory: the source's whole range (records with their stages, and rejects) is collected
    # into a list before anything is written. That is fine: the batch is written as one
    # transaction anyway and the loaders take it whole; a `ci_history` run over years holds
    # that range's executions at once.
    return CIRead(executions=list(source.executions(since, until, final)))


def read_executions(
    warehouse: Engine, source: CISource, since: dt.datetime, until: dt.datetime
) -> CIRead:
    """Executions (with stages) that started in the window, and the records the source
    could not parse.

    Executions already stored as finished are final: the source is told so (read on a short
    connection of `warehouse`, closed before the source is asked) that it need not read
    their stages again; their rows are still compared, so a build re-run in place is updated.
    """
    with warehouse.connect() as connection:
        final = finished_executions(connection, source.name, since, until)
    return _executions(source, since, until, final)


def read_ci(warehouse: Engine, source: CISource, since: dt.datetime, until: dt.datetime) -> CIRead:
    """`read_pipelines` then `read_executions` (the order they are stored in)."""
    pipelines = read_pipelines(source).pipelines
    return CIRead(pipelines, read_executions(warehouse, source, since, until).executions)


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


def ingest_directory(connection: Connection, source: DeliveryHistorySource) -> Results:
    """Users and clusters."""
    return {
        "users": loaders.store_users(connection, source.name, source.users()),
        "clusters": loaders.store_clusters(connection, source.name, source.clusters()),
    }


def ingest_pipelines(connection: Connection, source: CISource) -> Results:
    """`read_pipelines` and `store_ci` on the caller's connection: for a source that answers
    from memory (a server is read with `read_pipelines` before the transaction opens)."""
    return store_ci(connection, source.name, read_pipelines(source))


def ingest_executions(
    connection: Connection, source: CISource, since: dt.datetime, until: dt.datetime
) -> Results:
    """`read_executions` and `store_ci` on the caller's connection (a source answering from
    memory), the stored finished executions read on that connection."""
    final = finished_executions(connection, source.name, since, until)
    return store_ci(connection, source.name, _executions(source, since, until, final))


def ingest_ci(
    connection: Connection, source: CISource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Pipelines, and the executions (with stages) that started in the window, on the
    caller's connection (a source answering from memory: the sample)."""
    pipelines = ingest_pipelines(connection, source)
    executions = ingest_executions(connection, source, since, until)
    rejected = pipelines["ingestion_rejects"] + executions["ingestion_rejects"]
    return pipelines | executions | {"ingestion_rejects": rejected}


def ingest_commits(
    connection: Connection, source: DeliveryHistorySource, since: dt.datetime, until: dt.datetime
) -> Results:
    """The source's commits in the window, with their change metrics."""
    return {"commits": loaders.store_commits(connection, source.name, source.commits(since, until))}


def ingest_deployments(
    connection: Connection, source: DeliveryHistorySource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Deployments (linked to the stored commits they shipped) and incidents in the window."""
    deployments, links = loaders.store_deployments(
        connection, source.name, source.deployments(since, until)
    )
    incidents = loaders.store_incidents(connection, source.name, source.incidents(since, until))
    return {"deployments": deployments, "deployment_commits": links, "incidents": incidents}


def ingest_delivery_history(
    connection: Connection, source: DeliveryHistorySource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Commits, deployments (with the commits they shipped) and incidents in the window."""
    return ingest_commits(connection, source, since, until) | ingest_deployments(
        connection, source, since, until
    )
