"""Store commit change metrics in the warehouse's `commits` table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.changes.deployments import DeploymentCommitRef
from timbel_dagster.records.delivery import HISTORY_MEASURES, KAMEI_MEASURES
from timbel_dagster.warehouse.schema import models as m
from timbel_dagster.warehouse.store.loaders import commit_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.ml.changes.deployments import DeploymentCommitRef
    from timbel_dagster.ml.changes.metrics import CommitMetrics

_AUTHOR_LENGTH = 256
_REPOSITORY_LENGTH = 512
_SOURCE_LENGTH = 64


def store_commit_metrics(
    connection: Connection, repository: str, source: str, metrics: Iterable[CommitMetrics]
) -> int:
    """Upsert one `commits` row per commit, keyed on (repository, sha).

    Runs in the caller's transaction; storing the same metrics again writes nothing. The row's
    `message` is the commit's first line; authors longer than the column are cut to fit.

    Args:
        connection: an open warehouse connection inside a transaction.
        repository: the repository's name in the warehouse (for example its clone URL).
        source: the `source` column, e.g. `git`.
        metrics: from `commit_metrics`.

    Returns:
        How many rows were inserted or changed.

    Raises:
        ValueError: `repository` or `source` is empty or too long for its column.
    """
    for name, value, limit in (
        ("repository", repository, _REPOSITORY_LENGTH),
        ("source", source, _SOURCE_LENGTH),
    ):
        if not value or len(value) > limit:
            raise ValueError(f"commits.{name} must be 1 to {limit} characters, got {value!r}")
    rows = [
        {
            "id": commit_id(repository, c.sha),
            "source": source,
            "repository": repository,
            "sha": c.sha,
            "author": c.author[:_AUTHOR_LENGTH],
            "authored_at": c.authored_at,
            "committed_at": c.committed_at,
            "message": c.message,
            "fix": c.fix,
            **{name: float(getattr(c, name)) for name in (*KAMEI_MEASURES, *HISTORY_MEASURES)},
        }
        for c in metrics
    ]
    return bulk_upsert(connection, m.Commit.__table__, rows, ["repository", "sha"]).written


def stored_shas(connection: Connection, repository: str) -> set[str]:
    """The shas of `repository`'s commits already in the warehouse with every metric.

    A row stored before migration 0029 has no file-history metrics (NULL): it is left out, so
    that the next run walks the repository and stores it again, complete.
    """
    from sqlalchemy import select

    complete = [getattr(m.Commit, name).is_not(None) for name in HISTORY_MEASURES]
    query = select(m.Commit.sha).where(m.Commit.repository == repository, *complete)
    return set(connection.execute(query).scalars())


def linkable_deployments(
    connection: Connection, shas: set[str]
) -> tuple[list[DeploymentCommitRef], set[Any]]:
    """Deployments (not rollbacks: they ship nothing new) whose commit is one of `shas`, and
    the ids of those still to link: no commit linked yet, or only one (CI-derived rows link
    just the commit they built; Timbel's own rows none).

    Returns:
        (every such deployment, the ids to link).
    """
    from sqlalchemy import func, select

    D = m.Deployment
    query = select(D.id, D.service, D.environment, D.status, D.started_at, D.commit_to).where(
        D.kind != "rollback", D.commit_to.is_not(None)
    )
    found = [DeploymentCommitRef(*row) for row in connection.execute(query) if row[5] in shas]
    counts = dict(
        connection.execute(
            select(m.DeploymentCommit.deployment_id, func.count()).group_by(
                m.DeploymentCommit.deployment_id
            )
        ).all()
    )
    return found, {d.id for d in found if counts.get(d.id, 0) <= 1}


def store_deployment_links(
    connection: Connection, repository: str, links: dict[Any, list[str]]
) -> int:
    """Upsert `deployment_commits` rows (the commits must be stored); returns rows added."""
    rows = [
        {"deployment_id": deployment, "commit_id": commit_id(repository, sha)}
        for deployment, shas in links.items()
        for sha in shas
    ]
    return bulk_upsert(
        connection, m.DeploymentCommit.__table__, rows, ["deployment_id", "commit_id"]
    ).written
