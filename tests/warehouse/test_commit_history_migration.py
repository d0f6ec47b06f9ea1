"""Migration 0029 (`commits.prior_fixes`, `commits.recent_churn`): a commit stored before it
keeps its Kamei metrics and has the file history unknown (NULL, never 0) after the upgrade;
downgrading drops the columns and keeps the commit."""

from __future__ import annotations

from sqlalchemy import inspect, text

from timbel_dagster.records.delivery import HISTORY_MEASURES
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine


def _columns(url: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns("commits")}


def test_commits_stored_before_0029_have_an_unknown_file_history(database_url: str) -> None:
    migrate.upgrade(database_url, "0028")
    assert not set(HISTORY_MEASURES) & _columns(database_url)
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO commits (id, source, repository, sha, committed_at, fix, la, nuc, "
                "created_at, updated_at) VALUES (:id, 'git', 'shop/api', 'abc123', :at, true, "
                "12, 3, :at, :at)"
            ),
            {"id": "0b0a6c1e-0000-4000-8000-000000000029", "at": "2026-12-01 00:00:00+00:00"},
        )

    assert migrate.upgrade(database_url) == ("0028", migrate.head_revision())
    with get_engine(database_url).connect() as connection:
        row = connection.execute(
            text("SELECT sha, la, nuc, prior_fixes, recent_churn FROM commits")
        ).one()
    assert tuple(row) == ("abc123", 12.0, 3.0, None, None)

    migrate.downgrade(database_url, "0028")
    assert not set(HISTORY_MEASURES) & _columns(database_url)
    with get_engine(database_url).connect() as connection:
        assert connection.execute(text("SELECT la FROM commits")).scalar() == 12.0
