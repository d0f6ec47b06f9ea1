"""Warehouse tables as pandas DataFrames, for analytics assets, reports and notebooks.

Deployments are counted once: in live mode the same deployment can be stored twice, derived
from a CI deploy stage (source `jenkins`/`gitlab`) and written by Timbel's own deploy job
(source `timbel`), for example when a pipeline's deploy stage hands over to Timbel. Timbel's
row is the one kept (it knows the clusters, the outcome and the rollbacks): a row of another
source is left out when a `timbel` row deployed the same commit of the same service to the
same environment (a Timbel rollback, which names the commit it restored, repeats none),
and so are the incidents that row opened. A row without a commit is never taken for a
duplicate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

TIMBEL_SOURCE = "timbel"  # deploy/deployment_rows.SOURCE


def duplicate_deployment() -> Any:
    """A SQL condition on `Deployment`: the row repeats a deployment Timbel recorded itself."""
    from sqlalchemy import exists
    from sqlalchemy.orm import aliased

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Deployment as D

    timbel = aliased(D)
    return (D.source != TIMBEL_SOURCE) & exists().where(
        timbel.source == TIMBEL_SOURCE,
        # a rollback names the commit it restored: the release that first shipped that
        # commit is another deployment, not a repeat of the rollback
        timbel.kind != "rollback",
        timbel.service == D.service,
        timbel.environment == D.environment,
        timbel.commit_to == D.commit_to,
    )


def counted_incident() -> Any:
    """A SQL condition on `Incident`: not opened by a deployment `duplicate_deployment` drops."""
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Deployment as D
    from timbel_dagster.warehouse.schema.models import Incident as I

    dropped = select(D.id).where(duplicate_deployment())
    return I.caused_by_deployment_id.is_(None) | I.caused_by_deployment_id.not_in(dropped)


def deployments_frame(connection: Connection) -> pd.DataFrame:
    """Every deployment, counted once (see the module docstring)."""
    import pandas as pd
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Deployment as D

    query = select(
        D.id, D.service, D.environment, D.kind, D.status, D.started_at, D.completed_at
    ).where(~duplicate_deployment())
    return pd.DataFrame(
        connection.execute(query).all(),
        columns=["id", "service", "environment", "kind", "status", "started_at", "completed_at"],
    )


def shipped_commits_frame(connection: Connection) -> pd.DataFrame:
    """One row per (deployment, commit it shipped), with the commit's time."""
    import pandas as pd
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Commit, DeploymentCommit

    query = select(
        DeploymentCommit.deployment_id, DeploymentCommit.commit_id, Commit.committed_at
    ).join(Commit, Commit.id == DeploymentCommit.commit_id)
    return pd.DataFrame(
        connection.execute(query).all(), columns=["deployment_id", "commit_id", "committed_at"]
    )


def incidents_frame(connection: Connection) -> pd.DataFrame:
    import pandas as pd
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Incident as I

    query = select(
        I.id,
        I.service,
        I.environment,
        I.severity,
        I.opened_at,
        I.resolved_at,
        I.caused_by_deployment_id,
    ).where(counted_incident())
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
