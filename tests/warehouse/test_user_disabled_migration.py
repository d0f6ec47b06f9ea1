"""Migration 0018 (`users.disabled_at`): every user stored before it is enabled after the
upgrade; downgrading drops the column and keeps the users."""

from __future__ import annotations

from sqlalchemy import inspect, text

from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.people.users import find_user


def _columns(url: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns("users")}


def test_users_stored_before_0018_are_enabled_and_kept_by_the_downgrade(database_url: str) -> None:
    migrate.upgrade(database_url, "0017")
    assert "disabled_at" not in _columns(database_url)
    with get_engine(database_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, source, name, role, team, created_at, updated_at) "
                "VALUES (:id, 'sample', 'minji.kim', 'developer', 'payments', :at, :at)"
            ),
            {"id": "0b0a6c1e-0000-4000-8000-000000000001", "at": "2026-12-01 00:00:00+00:00"},
        )

    assert migrate.upgrade(database_url) == ("0017", migrate.head_revision())
    with get_engine(database_url).connect() as connection:
        person = find_user(connection, "minji.kim")
    assert person is not None and person.enabled and person.role == "developer"

    migrate.downgrade(database_url, "0017")
    assert "disabled_at" not in _columns(database_url)
    with get_engine(database_url).connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM users")).scalar()
    assert count == 1
