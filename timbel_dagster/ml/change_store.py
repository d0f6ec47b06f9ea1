"""Store commit change metrics in the warehouse's `commits` table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from timbel_dagster.warehouse import models as m
from timbel_dagster.warehouse.loaders import KAMEI_METRICS, commit_id
from timbel_dagster.warehouse.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.ml.change_metrics import CommitMetrics

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
            **{name: float(getattr(c, name)) for name in KAMEI_METRICS},
        }
        for c in metrics
    ]
    return bulk_upsert(connection, m.Commit.__table__, rows, ["repository", "sha"]).written
