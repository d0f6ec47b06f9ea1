"""Ingestion of a window of source data: what both the assets and `timbel sample` run.

Each function stores one source's records for [since, until) in dependency order (parents
before the rows that link to them) on the caller's connection, so the caller's transaction
decides what is committed together.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from timbel_dagster.resources.delivery import RejectRecord
from timbel_dagster.warehouse import loaders
from timbel_dagster.warehouse.rejects import store_rejects
from timbel_dagster.warehouse.upsert import UpsertResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.resources.delivery import CISource, DeliveryHistorySource

Results = dict[str, UpsertResult]


def ingest_directory(connection: Connection, source: DeliveryHistorySource) -> Results:
    """Users and clusters."""
    return {
        "users": loaders.store_users(connection, source.name, source.users()),
        "clusters": loaders.store_clusters(connection, source.name, source.clusters()),
    }


def ingest_pipelines(connection: Connection, source: CISource) -> Results:
    """The source's pipelines (Jenkins jobs, GitLab projects), and the entries of its job
    list it could not parse (`ingestion_rejects`)."""
    read = source.pipelines()
    pipelines = [p for p in read if not isinstance(p, RejectRecord)]
    rejects = [p for p in read if isinstance(p, RejectRecord)]
    return {
        "pipelines": loaders.store_pipelines(connection, source.name, pipelines),
        "ingestion_rejects": store_rejects(connection, source.name, rejects),
    }


def ingest_executions(
    connection: Connection, source: CISource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Executions (with stages) that started in the window, and in the same transaction
    the records the source could not parse (`ingestion_rejects`).

    Executions already stored as finished are final: the source is told so that it need not
    read their stages again; their rows are still compared, so a build re-run in place is
    updated.
    """
    from timbel_dagster.warehouse.queries import finished_executions

    final = finished_executions(connection, source.name, since, until)
    read = list(source.executions(since, until, final))
    executions, stages = loaders.store_executions(
        connection, source.name, [r for r in read if not isinstance(r, RejectRecord)]
    )
    rejected = store_rejects(
        connection, source.name, [r for r in read if isinstance(r, RejectRecord)]
    )
    return {
        "pipeline_executions": executions,
        "stage_executions": stages,
        "ingestion_rejects": rejected,
    }


def ingest_ci(
    connection: Connection, source: CISource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Pipelines, and the executions (with stages) that started in the window."""
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
