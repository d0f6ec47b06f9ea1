"""The warehouse rows the deployment-risk features are computed from, as DataFrames.

Four queries, each one set-based statement, work on SQLite and PostgreSQL alike; the feature
code in `deployment_features.py` then works on plain frames, so that tests can build the
frames by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

CHANGE_COLUMNS = (
    "ns",
    "nd",
    "nf",
    "entropy",
    "la",
    "ld",
    "lt",
    "fix",
    "ndev",
    "age",
    "nuc",
    "exp",
    "rexp",
    "sexp",
)


@dataclass(frozen=True)
class DeliveryFrames:
    """Deployments with what they shipped, the builds behind them and the incidents after."""

    deployments: pd.DataFrame  # id, service, environment, kind, status, started_at, ...
    shipped: pd.DataFrame  # deployment_id, committed_at and the 14 change metrics
    executions: pd.DataFrame  # id, pipeline_id, started_at, duration, status, stage counts
    incidents: pd.DataFrame  # service, environment, opened_at, caused_by_deployment_id


def _frame(connection: Connection, query, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(connection.execute(query).all(), columns=columns)


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    import pandas as pd

    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def load_delivery_frames(connection: Connection) -> DeliveryFrames:
    """Read every deployment, the commits each shipped, the builds and the incidents."""
    from sqlalchemy import case, func, select

    from timbel_dagster.warehouse.models import (
        Commit,
        Deployment,
        DeploymentCommit,
        Incident,
        PipelineExecution,
        StageExecution,
    )

    deployment_columns = [
        "id",
        "service",
        "environment",
        "kind",
        "status",
        "started_at",
        "completed_at",
        "execution_id",
        "image",
        "commit_to",
    ]
    deployments = _frame(
        connection,
        select(*(getattr(Deployment, c) for c in deployment_columns)),
        deployment_columns,
    )
    shipped = _frame(
        connection,
        select(
            DeploymentCommit.deployment_id,
            Commit.committed_at,
            Commit.author,
            *(getattr(Commit, c) for c in CHANGE_COLUMNS),
        ).join(Commit, Commit.id == DeploymentCommit.commit_id),
        ["deployment_id", "committed_at", "author", *CHANGE_COLUMNS],
    )
    stage_counts = (
        select(
            StageExecution.execution_id,
            func.sum(case((StageExecution.status == "failed", 1), else_=0)).label("failed"),
            func.max(StageExecution.attempt).label("max_attempt"),
        )
        .group_by(StageExecution.execution_id)
        .subquery()
    )
    executions = _frame(
        connection,
        select(
            PipelineExecution.id,
            PipelineExecution.pipeline_id,
            PipelineExecution.started_at,
            PipelineExecution.duration,
            PipelineExecution.status,
            PipelineExecution.commit_sha,
            func.coalesce(stage_counts.c.failed, 0),
            func.coalesce(stage_counts.c.max_attempt, 1),
        ).outerjoin(stage_counts, stage_counts.c.execution_id == PipelineExecution.id),
        [
            "id",
            "pipeline_id",
            "started_at",
            "duration",
            "status",
            "commit_sha",
            "failed_stages",
            "max_attempt",
        ],
    )
    incidents = _frame(
        connection,
        select(
            Incident.service, Incident.environment, Incident.opened_at, Incident.caused_by_deployment_id
        ),
        ["service", "environment", "opened_at", "caused_by_deployment_id"],
    )
    return DeliveryFrames(
        deployments=_utc(deployments, "started_at", "completed_at"),
        shipped=_utc(shipped, "committed_at"),
        executions=_utc(executions, "started_at"),
        incidents=_utc(incidents, "opened_at"),
    )
