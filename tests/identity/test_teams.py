"""Teams, members and service owners: admins manage them, each change audited, refusals
audited with nothing changed; a principal carries its teams and tenants."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert, select

from tests.deploy.known import know
from tests.identity.people import store_people
from timbel_dagster.identity import teams
from timbel_dagster.identity.authorize import NotAllowedError
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.tenants.store import get_tenant
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.people.user_admin import set_disabled
from timbel_dagster.warehouse.people.users import DisabledUserError, UnknownUserError
from timbel_dagster.warehouse.schema.deploy import Tenant
from timbel_dagster.warehouse.schema.models import AuditEvent


@pytest.fixture
def engine(warehouse_url: str):
    store_people(warehouse_url)
    know(warehouse_url, "shop-api")
    return get_engine(warehouse_url)


def _actions(engine) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        query = select(AuditEvent.actor, AuditEvent.action, AuditEvent.target)
        return [tuple(row) for row in connection.execute(query.order_by(AuditEvent.id))]


def test_an_admin_builds_a_team_that_owns_a_service(engine) -> None:
    assert teams.add_team(engine, "admin", "shop", "The shop")["display_name"] == "The shop"
    added = teams.set_member(engine, "admin", "shop", "lead")
    assert added["members"] == ["lead"] and not added["unchanged"]
    assert teams.set_member(engine, "admin", "shop", "lead")["unchanged"]
    teams.set_member(engine, "admin", "shop", "dev")
    owned = teams.own(engine, "admin", "shop-api", "shop")
    assert owned == {"service": "shop-api", "team": "shop", "from": None, "unchanged": False}

    with engine.connect() as connection:
        assert membership.owner_team(connection, "shop-api") == "shop"
        assert membership.owner_team(connection, "other-api") is None
        principal = load_principal(connection, "lead")
        assert teams.list_teams(connection) == [
            {"name": "shop", "display_name": "The shop",
             "created_at": teams.list_teams(connection)[0]["created_at"],
             "members": ["dev", "lead"], "services": ["shop-api"]},
        ]  # fmt: skip
    assert principal.teams == ("shop",) and principal.role == "team_lead"

    removed = teams.set_member(engine, "admin", "shop", "dev", remove=True)
    assert removed["members"] == ["lead"] and removed["removed"]
    teams.add_team(engine, "admin", "platform")
    assert teams.own(engine, "admin", "shop-api", "platform")["from"] == "shop"
    assert _actions(engine) == [
        ("admin", "team.add", "team shop"),
        ("admin", "team.member.add", "team shop"),
        ("admin", "team.member.add", "team shop"),
        ("admin", "team.own", "service shop-api"),
        ("admin", "team.member.remove", "team shop"),
        ("admin", "team.add", "team platform"),
        ("admin", "team.own", "service shop-api"),
    ]


def test_refusals_change_nothing_and_are_audited(engine) -> None:
    with pytest.raises(NotAllowedError, match=r"identity\.teams needs admin"):
        teams.add_team(engine, "lead", "shop")
    teams.add_team(engine, "admin", "shop")
    with pytest.raises(teams.TeamError, match="team 'shop' exists"):
        teams.add_team(engine, "admin", "shop")
    with pytest.raises(teams.TeamError, match="one word"):
        teams.add_team(engine, "admin", "two words")
    with pytest.raises(teams.TeamError, match="no team 'ads': add it with `timbel team add ads`"):
        teams.set_member(engine, "admin", "ads", "dev")
    with pytest.raises(UnknownUserError, match="'nobody' is not in the users table"):
        teams.set_member(engine, "admin", "shop", "nobody")
    with pytest.raises(teams.TeamError, match="no service 'nothing-api' is known"):
        teams.own(engine, "admin", "nothing-api", "shop")
    set_disabled(engine, "admin", "viewer", True)
    with pytest.raises(DisabledUserError):
        teams.set_member(engine, "admin", "shop", "viewer")
    with pytest.raises(UnknownUserError, match="'ghost' is not in the users table"):
        teams.add_team(engine, "ghost", "ads")  # the actor must be a real user

    with engine.connect() as connection:
        assert [t["name"] for t in teams.list_teams(connection)] == ["shop"]
        assert membership.members_of(connection, "shop") == ()
    refused = [a for _, a, _ in _actions(engine) if a.endswith(".refused")]
    assert refused == ["team.add.refused", "team.add.refused", "team.add.refused",
                       "team.member.add.refused", "team.member.add.refused", "team.own.refused",
                       "team.member.add.refused", "team.add.refused"]  # fmt: skip


def test_a_principal_carries_its_tenants_from_tenant_members(engine) -> None:
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Tenant).values(
                id=uuid.uuid4(), name="shop", cpu_cores=4.0, memory_bytes=8e9, clusters=["a"],
                status="provisioned", created_by="admin", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        membership.set_tenant_members(connection, "shop", ["dev", "lead"])
        assert get_tenant(connection, "shop").users == ["dev", "lead"]
        assert load_principal(connection, "dev").tenants == ("shop",)
        membership.set_tenant_members(connection, "shop", ["lead"])
        assert load_principal(connection, "dev").tenants == ()
