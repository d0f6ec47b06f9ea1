"""Migration 0019 (identity): the teams named in `users.team` become teams with their
members, the users named in `tenants.users` become tenant members (unknown names are left
out) and the JSON column goes, every user is a person; the downgrade drops the new tables,
keeps the users and puts `tenants.users` back from the members."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy import inspect, text

from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.types import JSONType, UTCDateTime

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
NEW_TABLES = {
    "api_tokens",
    "teams",
    "team_members",
    "tenant_members",
    "service_owners",
    "webhook_deliveries",
    "run_grants",
}
USERS = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("source"),
    sa.column("name"),
    sa.column("role"),
    sa.column("team"),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
TENANTS = sa.table(
    "tenants",
    sa.column("id", sa.Uuid()),
    sa.column("name"),
    sa.column("cpu_cores"),
    sa.column("memory_bytes"),
    sa.column("users", JSONType),
    sa.column("clusters", JSONType),
    sa.column("status"),
    sa.column("created_by"),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)


def _store_before_0019(url: str) -> None:
    people = [("minji.kim", "payments"), ("soyeon.lee", "payments"), ("yuna.cho", "commerce"),
              ("admin", None)]  # fmt: skip
    with get_engine(url).begin() as connection:
        connection.execute(
            USERS.insert(),
            [
                {"id": uuid.uuid4(), "source": "sample", "name": name, "role": "developer",
                 "team": team, "created_at": AT, "updated_at": AT}
                for name, team in people
            ],
        )  # fmt: skip
        connection.execute(
            TENANTS.insert(),
            [
                {"id": uuid.uuid4(), "name": "payments", "cpu_cores": 4.0,
                 "memory_bytes": 8e9, "users": ["soyeon.lee", "minji.kim", "left.company"],
                 "clusters": ["prod-a"], "status": "provisioned", "created_by": "admin",
                 "created_at": AT, "updated_at": AT}
            ],
        )  # fmt: skip


def _rows(url: str, query: str) -> list[tuple]:
    with get_engine(url).connect() as connection:
        return [tuple(row) for row in connection.execute(text(query))]


def test_teams_and_tenant_members_are_backfilled_and_the_downgrade_keeps_the_users(
    database_url: str,
) -> None:
    migrate.upgrade(database_url, "0018")
    _store_before_0019(database_url)

    assert migrate.upgrade(database_url) == ("0018", migrate.head_revision())
    assert _rows(database_url, "SELECT name FROM teams ORDER BY name") == [
        ("commerce",),
        ("payments",),
    ]
    assert _rows(database_url, "SELECT team, user_name FROM team_members ORDER BY 1, 2") == [
        ("commerce", "yuna.cho"),
        ("payments", "minji.kim"),
        ("payments", "soyeon.lee"),
    ]
    assert _rows(database_url, "SELECT tenant, user_name FROM tenant_members ORDER BY 2") == [
        ("payments", "minji.kim"),
        ("payments", "soyeon.lee"),
    ]
    assert _rows(database_url, "SELECT DISTINCT kind FROM users") == [("person",)]
    tenant_columns = {c["name"] for c in inspect(get_engine(database_url)).get_columns("tenants")}
    assert "users" not in tenant_columns and "clusters" in tenant_columns

    migrate.downgrade(database_url, "0018")
    tables = set(inspect(get_engine(database_url)).get_table_names())
    assert not tables & NEW_TABLES
    columns = {c["name"] for c in inspect(get_engine(database_url)).get_columns("users")}
    assert {"kind", "oidc_subject"}.isdisjoint(columns) and "team" in columns
    assert _rows(database_url, "SELECT count(*) FROM users") == [(4,)]
    with get_engine(database_url).connect() as connection:
        restored = connection.execute(sa.select(TENANTS.c.users)).scalar_one()
    assert restored == ["minji.kim", "soyeon.lee"]  # 'left.company' was never a user
    # And up again: the backfill runs on the same rows without a conflict.
    assert migrate.upgrade(database_url) == ("0018", migrate.head_revision())
    assert len(_rows(database_url, "SELECT * FROM team_members")) == 3
