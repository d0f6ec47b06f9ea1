"""`warehouse.people.home_team`: a user's team (`users.team`) is a membership of it
(`team_members`, what approvals check), added with the user in one transaction, moved by a
users file, and never a team created on the way."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.warehouse.test_users import add_teams, events
from timbel_dagster.identity import teams as team_admin
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.people.home_team import UnknownTeamError
from timbel_dagster.warehouse.people.user_admin import add_user, import_users
from timbel_dagster.warehouse.people.users import UserEntry, entry, find_user
from timbel_dagster.warehouse.schema.identity import TeamMember


def _members(url: str) -> list[tuple[str, str]]:
    with get_engine(url).connect() as connection:
        query = select(TeamMember.team, TeamMember.user_name)
        return sorted(tuple(row) for row in connection.execute(query))


def test_adding_a_user_with_a_team_makes_them_a_member_of_it(warehouse_url: str) -> None:
    add_teams(warehouse_url, "platform", "payments")
    engine = get_engine(warehouse_url)
    first = add_user(engine, "root", entry("root", "admin", team="platform"))
    assert first["teams"] == ["+platform"]
    added = add_user(engine, "root", entry("soyeon", "team_lead", team="payments"))
    assert added["teams"] == ["+payments"] and added["user"]["team"] == "payments"
    assert _members(warehouse_url) == [("payments", "soyeon"), ("platform", "root")]
    with engine.connect() as connection:
        # What approvals read: the team lead is in the team that owns its services.
        assert load_principal(connection, "soyeon").teams == ("payments",)
    logged = [(action, target, details) for _, action, target, details in events(warehouse_url)]
    assert logged[-2:] == [
        ("user.add", "user soyeon",
         {"role": "team_lead", "kind": "person", "team": "payments", "bootstrap": False}),
        ("team.member.add", "team payments", {"user": "soyeon", "via": "user.add"}),
    ]  # fmt: skip


def test_an_unknown_team_is_refused_naming_timbel_team_add_and_nothing_is_written(
    warehouse_url: str,
) -> None:
    engine = get_engine(warehouse_url)
    with pytest.raises(UnknownTeamError) as bootstrap:
        add_user(engine, "root", entry("root", "admin", team="platform"))
    assert str(bootstrap.value) == (
        "no team 'platform' for user 'root': add it first with `timbel team add platform` "
        "(the first admin: add them without --team, then `timbel team add platform --as root` "
        "and `timbel team member platform root --as root`)"
    )
    add_user(engine, "root", entry("root", "admin"))
    team_admin.add_team(engine, "root", "platform")
    with pytest.raises(UnknownTeamError, match=r"^no team 'shop' for user 'bob': add it first "
                       r"with `timbel team add shop`$"):  # fmt: skip
        add_user(engine, "root", entry("bob", "developer", team="shop"))
    with pytest.raises(UnknownTeamError, match="no team 'shop' for user 'bob'"):
        import_users(engine, "root", [UserEntry("cy", "viewer"), UserEntry(
            "bob", "developer", {"team": "shop"})], "people.yaml")  # fmt: skip
    with engine.connect() as connection:
        assert find_user(connection, "bob") is None and find_user(connection, "cy") is None
        assert membership.find_team(connection, "shop") is None
    assert [a for _, a, _, _ in events(warehouse_url)] == [
        "user.add.refused", "user.add", "team.add", "user.add.refused", "user.import.refused",
    ]  # fmt: skip


def test_a_users_file_moves_memberships_with_the_team_and_keeps_the_others(
    warehouse_url: str,
) -> None:
    add_teams(warehouse_url, "platform", "payments", "data", "search")
    engine = get_engine(warehouse_url)
    add_user(engine, "root", entry("root", "admin"))
    add_user(engine, "root", entry("bob", "team_lead", team="payments"))
    add_user(engine, "root", entry("cy", "developer", team="data"))
    team_admin.set_member(engine, "root", "search", "bob")  # a second team, by hand
    before = len(events(warehouse_url))

    moved = [UserEntry("bob", "team_lead", {"team": "data"}), UserEntry("cy", "developer",
             {"team": None})]  # fmt: skip
    dry = import_users(engine, "root", moved, "people.yaml", dry_run=True)
    assert dry["teams"] == {"bob": ["-payments", "+data"], "cy": ["-data"]}
    assert _members(warehouse_url) == [("data", "cy"), ("payments", "bob"), ("search", "bob")]
    done = import_users(engine, "root", moved, "people.yaml")
    assert done["updated"] == {"bob": ["team"], "cy": ["team"]}
    assert _members(warehouse_url) == [("data", "bob"), ("search", "bob")]
    assert [(a, t, d) for _, a, t, d in events(warehouse_url)[before:]] == [
        ("user.update", "user bob",
         {"file": "people.yaml", "bootstrap": False, "changes": {"team": "data"}}),
        ("team.member.remove", "team payments", {"user": "bob", "via": "user.update"}),
        ("team.member.add", "team data", {"user": "bob", "via": "user.update"}),
        ("user.update", "user cy",
         {"file": "people.yaml", "bootstrap": False, "changes": {"team": None}}),
        ("team.member.remove", "team data", {"user": "cy", "via": "user.update"}),
    ]  # fmt: skip
    again = import_users(engine, "root", moved, "people.yaml")
    assert (again["updated"], again["teams"], again["unchanged"]) == ({}, {}, ["bob", "cy"])

    # A team taken away by hand comes back when the file names it: an update of team_members.
    team_admin.set_member(engine, "root", "search", "bob", remove=True)
    with engine.begin() as connection:
        membership.remove_member(connection, "data", "bob")  # as before migration 0019
    repaired = import_users(engine, "root", moved[:1], "people.yaml")
    assert repaired["updated"] == {"bob": ["team_members"]}
    assert repaired["teams"] == {"bob": ["+data"]}
    assert _members(warehouse_url) == [("data", "bob")]


def test_leaving_ones_home_team_clears_it(warehouse_url: str) -> None:
    add_teams(warehouse_url, "payments", "search")
    engine = get_engine(warehouse_url)
    add_user(engine, "root", entry("root", "admin"))
    add_user(engine, "root", entry("bob", "developer", team="payments"))
    team_admin.set_member(engine, "root", "search", "bob")
    other = team_admin.set_member(engine, "root", "search", "bob", remove=True)
    assert other["home_team_cleared"] is False
    left = team_admin.set_member(engine, "root", "payments", "bob", remove=True)
    assert left["home_team_cleared"] is True and left["members"] == []
    with engine.connect() as connection:
        assert find_user(connection, "bob").team is None
    assert events(warehouse_url)[-1][1:] == (
        "team.member.remove",
        "team payments",
        {"user": "bob", "home_team_cleared": True},
    )
