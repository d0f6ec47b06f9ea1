"""Migration 0020 (`pipeline_templates.retired_*`): every template stored before it is in use
after the upgrade; downgrading drops the columns and keeps the templates and their versions."""

from __future__ import annotations

from sqlalchemy import inspect, text

from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine

RETIRED = {"retired_at", "retired_by", "retired_reason"}


def _columns(url: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns("pipeline_templates")}


def test_templates_stored_before_0020_are_in_use_and_kept_by_the_downgrade(
    database_url: str,
) -> None:
    migrate.upgrade(database_url, "0019")
    assert not RETIRED & _columns(database_url)
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO pipeline_templates (id, name, kind, owner, team, visibility, "
                "description, created_at, updated_at) VALUES (:id, 'py-ci', 'gitlab-ci', "
                "'alice', 'payments', 'public', '', :at, :at)"
            ),
            {"id": "0b0a6c1e-0000-4000-8000-000000000020", "at": "2026-12-01 00:00:00+00:00"},
        )

    assert migrate.upgrade(database_url) == ("0019", migrate.head_revision())
    assert _columns(database_url) >= RETIRED
    with get_engine(database_url).connect() as connection:
        row = connection.execute(
            text("SELECT name, retired_at, retired_by, retired_reason FROM pipeline_templates")
        ).one()
    assert tuple(row) == ("py-ci", None, None, None)

    migrate.downgrade(database_url, "0019")
    assert not RETIRED & _columns(database_url)
    with get_engine(database_url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM pipeline_templates")).scalar() == 1
