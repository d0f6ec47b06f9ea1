"""Identity for the API (issue 15): user kinds and OIDC subjects, API tokens, teams and
their members, tenant members, service owners, webhook deliveries, run grants, and the
indexes the API's list routes page by.

Backfills: every team named in `users.team` becomes a team with that user as a member, and
every user named in a tenant's `tenants.users` list (and present in `users`) becomes a
member of that tenant. `users.team` stays (it is what a directory source sends);
`tenants.users` is dropped: tenant members are rows of `tenant_members` from now on. The
downgrade puts `tenants.users` back from them.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 02:30:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from timbel_dagster.warehouse.schema.types import JSONType, UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def _index(table: str, *columns: str) -> None:
    # Plain CREATE INDEX, never a batch: on SQLite a batch may rebuild the table, and
    # dropping the old copy would cascade to its children (approval_steps, say).
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns), unique=False)


def _drop_index(table: str, *columns: str) -> None:
    op.drop_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table_name=table)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_name"], ["users.name"], name=op.f(f"fk_{table}_user_name_users"), ondelete="CASCADE"
    )


def _users_columns() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="person", nullable=False)
        )
        batch_op.add_column(sa.Column("oidc_subject", sa.String(length=512), nullable=True))
        batch_op.create_check_constraint(op.f("ck_users_kind"), "kind IN ('person', 'service')")
        batch_op.create_unique_constraint(op.f("uq_users_oidc_subject"), ["oidc_subject"])


def _membership_tables() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        _at("created_at"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _at("expires_at", nullable=True),
        _at("revoked_at", nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        _at("last_used_at", nullable=True),
        sa.Column("last_used_ip", sa.String(length=64), nullable=True),
        _user_fk("api_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_api_tokens_secret_sha256")),
    )
    _index("api_tokens", "user_name")
    op.create_table(
        "teams",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        _at("created_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_teams")),
    )
    op.create_table(
        "team_members",
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["team"], ["teams.name"], name=op.f("fk_team_members_team_teams"), ondelete="CASCADE"
        ),
        _user_fk("team_members"),
        sa.PrimaryKeyConstraint("team", "user_name", name=op.f("pk_team_members")),
    )
    _index("team_members", "user_name")
    op.create_table(
        "tenant_members",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"],
            ["tenants.name"],
            name=op.f("fk_tenant_members_tenant_tenants"),
            ondelete="CASCADE",
        ),
        _user_fk("tenant_members"),
        sa.PrimaryKeyConstraint("tenant", "user_name", name=op.f("pk_tenant_members")),
    )
    _index("tenant_members", "user_name")
    op.create_table(
        "service_owners",
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=True),
        sa.ForeignKeyConstraint(
            ["team"], ["teams.name"], name=op.f("fk_service_owners_team_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_service_owners")),
    )


def _handover_tables() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("delivery_key", sa.String(length=256), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=512), nullable=True),
        _at("received_at"),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("taken_at", nullable=True),
        sa.Column("run_key", sa.String(length=256), nullable=True),
        sa.CheckConstraint(
            "source IN ('gitlab', 'jenkins', 'registry', 'slack')",
            name=op.f("ck_webhook_deliveries_source"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'taken', 'ignored')", name=op.f("ck_webhook_deliveries_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "source", "delivery_key", name=op.f("uq_webhook_deliveries_source_delivery_key")
        ),
    )
    _index("webhook_deliveries", "source", "status", "received_at")
    op.create_table(
        "run_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("config_sha256", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("request_number", sa.Integer(), nullable=True),
        _at("created_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_grants")),
    )
    _index("run_grants", "used_at", "job")


# The list routes of the API page by these (EXPLAIN on 1M rows must show no sequential scan).
_LIST_INDEXES = (
    ("pipeline_executions", "started_at", "id"),
    ("pipeline_executions", "status", "started_at"),
    ("deployment_requests", "status", "number"),
)


def _read_tenant_users(bind: sa.engine.Connection) -> dict[str, list[str]]:
    tenants = sa.table("tenants", sa.column("name"), sa.column("users", JSONType))
    return {name: list(users or []) for name, users in bind.execute(sa.select(tenants))}


def _backfill(tenant_users: dict[str, list[str]]) -> None:
    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    users = sa.table("users", sa.column("name"), sa.column("team"))
    teams = sa.table("teams", sa.column("name"), sa.column("created_at", UTCDateTime()))
    team_members = sa.table("team_members", sa.column("team"), sa.column("user_name"))
    tenant_members = sa.table("tenant_members", sa.column("tenant"), sa.column("user_name"))

    people = bind.execute(sa.select(users.c.name, users.c.team)).all()
    named = sorted({team for _, team in people if team})
    if named:
        bind.execute(teams.insert(), [{"name": team, "created_at": now} for team in named])
        bind.execute(
            team_members.insert(),
            [{"team": team, "user_name": name} for name, team in people if team],
        )
    known = {name for name, _ in people}
    members = [
        {"tenant": tenant, "user_name": name}
        for tenant, listed in tenant_users.items()
        for name in sorted(set(listed))
        if name in known  # a name that is no user (yet) cannot be a member row
    ]
    if members:
        bind.execute(tenant_members.insert(), members)


def upgrade() -> None:
    _users_columns()
    tenant_users = _read_tenant_users(op.get_bind())
    # Tenant members live in `tenant_members` from now on. The column goes first, before any
    # table refers to `tenants`: on SQLite the batch rebuilds the table, and dropping the old
    # copy would cascade to the members.
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("users")
    _membership_tables()
    _handover_tables()
    for table, *columns in _LIST_INDEXES:
        _index(table, *columns)
    _backfill(tenant_users)


def _read_tenant_members(bind: sa.engine.Connection) -> dict[str, list[str]]:
    members = sa.table("tenant_members", sa.column("tenant"), sa.column("user_name"))
    listed: dict[str, list[str]] = {}
    for tenant, user in bind.execute(sa.select(members.c.tenant, members.c.user_name)):
        listed.setdefault(tenant, []).append(user)
    return listed


def _restore_tenant_users(listed: dict[str, list[str]]) -> None:
    """Put `tenants.users` back from the members read before their table went (names that
    were no user were left out by the upgrade and stay out)."""
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("users", JSONType, nullable=True))
    bind = op.get_bind()
    tenants = sa.table("tenants", sa.column("name"), sa.column("users", JSONType))
    for (name,) in bind.execute(sa.select(tenants.c.name)).all():
        bind.execute(
            tenants.update()
            .where(tenants.c.name == name)
            .values(users=sorted(listed.get(name, [])))
        )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.alter_column("users", existing_type=JSONType, nullable=False)


def downgrade() -> None:
    tenant_members = _read_tenant_members(op.get_bind())
    for table, *columns in reversed(_LIST_INDEXES):
        _drop_index(table, *columns)
    _drop_index("run_grants", "used_at", "job")
    op.drop_table("run_grants")
    _drop_index("webhook_deliveries", "source", "status", "received_at")
    op.drop_table("webhook_deliveries")
    op.drop_table("service_owners")
    for table in ("tenant_members", "team_members", "api_tokens"):
        _drop_index(table, "user_name")
        op.drop_table(table)
    op.drop_table("teams")
    _restore_tenant_users(tenant_members)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_users_oidc_subject"), type_="unique")
        batch_op.drop_constraint(op.f("ck_users_kind"), type_="check")
        batch_op.drop_column("oidc_subject")
        batch_op.drop_column("kind")
