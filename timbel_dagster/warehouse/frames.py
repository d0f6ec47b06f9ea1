"""Warehouse tables as pandas DataFrames, for analytics assets, reports and notebooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection


def deployments_frame(connection: Connection) -> pd.DataFrame:
    import pandas as pd
    from sqlalchemy import select

    from timbel_dagster.warehouse.models import Deployment as D

    query = select(D.id, D.service, D.environment, D.kind, D.status, D.started_at, D.completed_at)
    return pd.DataFrame(
        connection.execute(query).all(),
        columns=["id", "service", "environment", "kind", "status", "started_at", "completed_at"],
    )


def shipped_commits_frame(connection: Connection) -> pd.DataFrame:
    """One row per (deployment, commit it shipped), with the commit's time."""
    import pandas as pd
    from sqlalchemy import select

    from timbel_dagster.warehouse.models import Commit, DeploymentCommit

    query = select(
        DeploymentCommit.deployment_id, DeploymentCommit.commit_id, Commit.committed_at
    ).join(Commit, Commit.id == DeploymentCommit.commit_id)
    return pd.DataFrame(
        connection.execute(query).all(), columns=["deployment_id", "commit_id", "committed_at"]
    )


def incidents_frame(connection: Connection) -> pd.DataFrame:
    import pandas as pd
    from sqlalchemy import select

    from timbel_dagster.warehouse.models import Incident as I

    query = select(
        I.id,
        I.service,
        I.environment,
        I.severity,
        I.opened_at,
        I.resolved_at,
        I.caused_by_deployment_id,
    )
    return pd.DataFrame(
        connection.execute(query).all(),
        columns=[
            "id",
            "service",
            "environment",
            "severity",
            "opened_at",
            "resolved_at",
            "caused_by_deployment_id",
        ],
    )
