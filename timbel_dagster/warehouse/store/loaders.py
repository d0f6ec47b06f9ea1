"""Turn source records into warehouse rows and store them with `bulk_upsert`.

Every ingestion (assets, `timbel sample`, later the real clients) goes through these
functions, so a row means the same thing whichever source wrote it. Each call runs on the
caller's connection; the caller's transaction makes a batch all-or-nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from timbel_dagster.records.delivery import (
    HISTORY_MEASURES,
    KAMEI_MEASURES,
    ClusterRecord,
    CommitRecord,
    DeploymentRecord,
    ExecutionRecord,
    IncidentRecord,
    PipelineRecord,
    UserRecord,
)
from timbel_dagster.warehouse.schema import models as m
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import UpsertResult, bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection


def pipeline_id(source: str, name: str) -> uuid.UUID:
    return stable_id("pipelines", source, name)


def execution_id(source: str, pipeline: str, external_id: str) -> uuid.UUID:
    return stable_id("pipeline_executions", source, pipeline, external_id)


def commit_id(repository: str, sha: str) -> uuid.UUID:
    return stable_id("commits", repository, sha)


def deployment_id(source: str, external_id: str) -> uuid.UUID:
    return stable_id("deployments", source, external_id)


def _existing(connection: Connection, table: Table, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of `ids` are already stored (links are only made to rows that exist)."""
    from sqlalchemy import select

    wanted, found = list(set(ids)), set()
    for start in range(0, len(wanted), 5_000):
        chunk = wanted[start : start + 5_000]
        found.update(connection.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars())
    return found


def store_users(connection: Connection, source: str, users: Sequence[UserRecord]) -> UpsertResult:
    rows = [
        {
            "id": stable_id("users", u.name),
            "source": source,
            "name": u.name,
            "display_name": u.display_name,
            "email": u.email,
            "role": u.role,
            "team": u.team,
            "slack_id": u.slack_id,
        }
        for u in users
    ]
    return bulk_upsert(connection, m.User.__table__, rows, ["name"])


def store_clusters(
    connection: Connection, source: str, clusters: Sequence[ClusterRecord]
) -> UpsertResult:
    rows = [
        {
            "id": stable_id("clusters", c.name),
            "source": source,
            "name": c.name,
            "environment_group": c.environment_group,
            "api_url": c.api_url,
            "kubernetes_version": c.kubernetes_version,
        }
        for c in clusters
    ]
    return bulk_upsert(connection, m.Cluster.__table__, rows, ["name"])


def store_pipelines(
    connection: Connection, source: str, pipelines: Sequence[PipelineRecord]
) -> UpsertResult:
    rows = [
        {
            "id": pipeline_id(source, p.name),
            "source": source,
            "ci_system": p.ci_system,
            "name": p.name,
            "service": p.service,
            "repository": p.repository,
            "default_branch": p.default_branch,
            "url": p.url,
        }
        for p in pipelines
    ]
    return bulk_upsert(connection, m.Pipeline.__table__, rows, ["source", "name"])


def store_executions(
    connection: Connection, source: str, executions: Iterable[ExecutionRecord]
) -> tuple[UpsertResult, UpsertResult]:
    """Store executions and their stages; returns (executions, stages) results.

    `logs` is left out on purpose: it is written by the log follower, and re-ingesting an
    execution must not blank a log that was already stored.
    """
    execution_rows, stage_rows = [], []
    for e in executions:
        exec_id = execution_id(source, e.pipeline, e.external_id)
        execution_rows.append(
            {
                "id": exec_id,
                "source": source,
                "pipeline_id": pipeline_id(source, e.pipeline),
                "external_id": e.external_id,
                "sequence": e.sequence,
                "triggered_by": e.triggered_by,
                "status": e.status,
                "started_at": e.started_at,
                "completed_at": e.completed_at,
                "duration": e.duration,
                "queue_seconds": e.queue_seconds,
                "artifacts": e.artifacts,
                "error_message": e.error_message,
                "url": e.url,
                "commit_sha": e.commit_sha,
                "branch": e.branch,
            }
        )
        stage_rows += [
            {
                "id": stable_id("stage_executions", exec_id, s.external_id),
                "execution_id": exec_id,
                "external_id": s.external_id,
                "name": s.name,
                "parent_name": s.parent_name,
                "position": s.position,
                "status": s.status,
                "started_at": s.started_at,
                "duration": s.duration,
                "queue_seconds": s.queue_seconds,
                "attempt": s.attempt,
                "error_message": s.error_message,
            }
            for s in e.stages
        ]
    executions_result = bulk_upsert(
        connection,
        m.PipelineExecution.__table__,
        execution_rows,
        ["source", "pipeline_id", "external_id"],
    )
    stages_result = bulk_upsert(
        connection, m.StageExecution.__table__, stage_rows, ["execution_id", "external_id"]
    )
    return executions_result, stages_result


def store_commits(
    connection: Connection, source: str, commits: Sequence[CommitRecord]
) -> UpsertResult:
    rows = [
        {
            "id": commit_id(c.repository, c.sha),
            "source": source,
            "repository": c.repository,
            "sha": c.sha,
            "author": c.author,
            "authored_at": c.committed_at,
            "committed_at": c.committed_at,
            "message": c.message,
            "fix": c.fix,
            # A record without the file-history measures (the sample's commits have no files)
            # stores NULL there: unknown, never 0.
            **{metric: c.metrics.get(metric) for metric in (*KAMEI_MEASURES, *HISTORY_MEASURES)},
        }
        for c in commits
    ]
    return bulk_upsert(connection, m.Commit.__table__, rows, ["repository", "sha"])


def store_deployments(
    connection: Connection, source: str, deployments: Sequence[DeploymentRecord]
) -> tuple[UpsertResult, UpsertResult]:
    """Store deployments and which commits each shipped; returns (deployments, links)."""
    wanted_executions = {
        execution_id(source, *d.execution) for d in deployments if d.execution is not None
    }
    known_executions = _existing(connection, m.PipelineExecution.__table__, wanted_executions)
    rows, links = [], []
    for d in deployments:
        dep_id = deployment_id(source, d.external_id)
        exec_id = execution_id(source, *d.execution) if d.execution else None
        rows.append(
            {
                "id": dep_id,
                "source": source,
                "external_id": d.external_id,
                "service": d.service,
                "environment": d.environment,
                "cluster": d.cluster,
                "image": d.image,
                "version": d.version,
                "commit_from": d.commit_from,
                "commit_to": d.commit_to,
                "kind": d.kind,
                "status": d.status,
                "started_at": d.started_at,
                "completed_at": d.completed_at,
                "triggered_by": d.triggered_by,
                "execution_id": exec_id if exec_id in known_executions else None,
            }
        )
        links += [{"deployment_id": dep_id, "commit_id": commit_id(*c)} for c in d.commits]
    known_commits = _existing(connection, m.Commit.__table__, {link["commit_id"] for link in links})
    deployments_result = bulk_upsert(
        connection, m.Deployment.__table__, rows, ["source", "external_id"]
    )
    links_result = bulk_upsert(
        connection,
        m.DeploymentCommit.__table__,
        [link for link in links if link["commit_id"] in known_commits],
        ["deployment_id", "commit_id"],
    )
    return deployments_result, links_result


def store_incidents(
    connection: Connection, source: str, incidents: Sequence[IncidentRecord]
) -> UpsertResult:
    def dep(external: str | None) -> uuid.UUID | None:
        return deployment_id(source, external) if external else None

    wanted = {dep(i.caused_by_deployment) for i in incidents} | {
        dep(i.restored_by_deployment) for i in incidents
    }
    known = _existing(connection, m.Deployment.__table__, wanted - {None})
    rows = [
        {
            "id": stable_id("incidents", source, i.external_id),
            "source": source,
            "external_id": i.external_id,
            "service": i.service,
            "environment": i.environment,
            "severity": i.severity,
            "title": i.title,
            "opened_at": i.opened_at,
            "resolved_at": i.resolved_at,
            "caused_by_deployment_id": d if (d := dep(i.caused_by_deployment)) in known else None,
            "restored_by_deployment_id": r
            if (r := dep(i.restored_by_deployment)) in known
            else None,
        }
        for i in incidents
    ]
    return bulk_upsert(connection, m.Incident.__table__, rows, ["source", "external_id"])
