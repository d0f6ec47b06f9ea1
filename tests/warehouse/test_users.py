"""`warehouse.people.users`: one check of who may act, and managing users (admins only, except the
first user of an empty table), every change and refusal audited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from timbel_dagster.deploy.lookup import RequestError
from timbel_dagster.deploy.lookup import actor as deploy_actor
from timbel_dagster.pipeline_templates.access import Viewer, viewer
from timbel_dagster.tenants.store import UnknownUsersError, check_users
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.people.user_admin import (
    add_user,
    import_users,
    set_disabled,
    set_role,
)
from timbel_dagster.warehouse.people.users import (
    DisabledUserError,
    UnknownUserError,
    UserAdminError,
    UserEntry,
    entry,
    find_user,
    list_users,
    require_user,
    require_users,
)
from timbel_dagster.warehouse.schema.models import AuditEvent

UNKNOWN = "user 'zed' is not in the users table: add them with `timbel users add zed --role ROLE`"
DISABLED = "user 'bob' is disabled: an admin can enable them with `timbel users enable bob`"


def events(url: str) -> list[tuple[str, str, str | None, dict]]:
    with get_engine(url).connect() as connection:
        assert verify_chain(connection).intact
        query = select(
            AuditEvent.actor, AuditEvent.action, AuditEvent.target, AuditEvent.details
        ).order_by(AuditEvent.id)
        return [tuple(r) for r in connection.execute(query.order_by(AuditEvent.id))]


def add_teams(url: str, *names: str) -> None:
    """Teams stored as a directory source or `timbel team add` would (users need them)."""
    with get_engine(url).begin() as connection:
        for name in names:
            membership.add_team(connection, name, None, dt.datetime.now(dt.UTC))


@pytest.fixture
def staff(warehouse_url: str) -> str:
    """root (admin, the bootstrap), ann (admin), bob (developer, disabled), cy (team lead);
    teams platform, payments and data."""
    add_teams(warehouse_url, "platform", "payments", "data")
    engine = get_engine(warehouse_url)
    add_user(engine, "installer", entry("root", "admin", team="platform"))
    add_user(engine, "root", entry("ann", "admin", team="platform", email="ann@example.com"))
    add_user(engine, "root", entry("bob", "developer", team="payments"))
    add_user(engine, "root", entry("cy", "team_lead", team="payments"))
    set_disabled(engine, "root", "bob", True)
    return warehouse_url


def test_the_first_user_may_be_added_by_anyone_and_must_be_an_admin(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    with pytest.raises(UserAdminError, match="the first user must be an admin"):
        add_user(engine, "root", entry("dev", "developer"))
    first = add_user(engine, "root", entry("root", "admin", display_name="Root"))
    assert first["bootstrap"] is True and first["user"]["role"] == "admin"
    second = add_user(engine, "root", entry("dev", "developer"))
    assert second["bootstrap"] is False
    with pytest.raises(UserAdminError, match="dev may not manage users: only an admin may"):
        add_user(engine, "dev", entry("mallory", "admin"))
    with pytest.raises(UnknownUserError, match="user 'stranger' is not in the users table"):
        add_user(engine, "stranger", entry("mallory", "admin"))
    assert [(a, action, target) for a, action, target, _ in events(warehouse_url)] == [
        ("root", "user.add.refused", "user dev"),
        ("root", "user.add", "user root"),
        ("root", "user.add", "user dev"),
        ("dev", "user.add.refused", "user mallory"),
        ("stranger", "user.add.refused", "user mallory"),
    ]
    assert events(warehouse_url)[1][3] == {
        "role": "admin",
        "kind": "person",
        "display_name": "Root",
        "bootstrap": True,
    }


def test_one_check_refuses_unknown_and_disabled_users(staff: str) -> None:
    with get_engine(staff).connect() as connection:
        assert require_user(connection, "cy").role == "team_lead"
        with pytest.raises(UnknownUserError) as unknown:
            require_user(connection, "zed")
        assert str(unknown.value) == UNKNOWN
        with pytest.raises(UnknownUserError) as acting:
            require_user(connection, "zed", acting=True)
        assert str(acting.value).startswith(UNKNOWN + ", or act as a known user with --as")
        with pytest.raises(DisabledUserError) as disabled:
            require_user(connection, "bob")
        assert str(disabled.value) == DISABLED
        with pytest.raises(UnknownUserError, match="users 'x', 'zed' are not in the users"):
            require_users(connection, ["zed", "cy", "x", "bob"])

        # The three places that check who acts all ask the same function.
        with pytest.raises(RequestError, match=r"^user 'bob' is disabled"):
            deploy_actor(connection, "bob")
        with pytest.raises(RequestError, match=r"^user 'zed' is not in the users table"):
            deploy_actor(connection, "zed")
        assert deploy_actor(connection, "cy").team == "payments"
        with pytest.raises(LookupError, match=r"^user 'bob' is disabled"):
            viewer(connection, "bob", known=True)
        # Reading: a disabled user keeps no role or team (sees what a stranger sees).
        assert viewer(connection, "bob") == Viewer("bob")
        assert viewer(connection, "ann") == Viewer("ann", "admin", "platform")
        with pytest.raises(UnknownUsersError, match=r"^user 'bob' is disabled"):
            check_users(connection, ["cy", "bob"])
        with pytest.raises(UnknownUsersError, match=", or act as a known user"):
            check_users(connection, ["zed"], acting=True)
        check_users(connection, ["cy", "ann"])


def test_disabled_users_cannot_manage_users_and_are_listed_only_with_all(staff: str) -> None:
    engine = get_engine(staff)
    set_role(engine, "root", "bob", "admin")
    with pytest.raises(DisabledUserError):
        add_user(engine, "bob", entry("eve", "viewer"))
    with get_engine(staff).connect() as connection:
        assert [p.name for p in list_users(connection)] == ["ann", "cy", "root"]
        everyone = list_users(connection, include_disabled=True)
        assert [(p.name, p.enabled) for p in everyone] == [
            ("ann", True),
            ("bob", False),
            ("cy", True),
            ("root", True),
        ]
        assert [p.name for p in list_users(connection, role="admin")] == ["ann", "root"]
        assert [p.name for p in list_users(connection, team="payments")] == ["cy"]
        with pytest.raises(ValueError, match="role 'boss' is not one of developer, team_lead"):
            list_users(connection, role="boss")


def test_set_role_enable_disable_are_audited_once_and_keep_an_admin(staff: str) -> None:
    engine = get_engine(staff)
    before = len(events(staff))
    assert set_role(engine, "ann", "cy", "operations")["from"] == "team_lead"
    assert set_role(engine, "ann", "cy", "operations")["unchanged"] is True
    assert set_disabled(engine, "ann", "bob", False)["unchanged"] is False
    assert set_disabled(engine, "ann", "bob", False)["unchanged"] is True
    set_disabled(engine, "ann", "root", True)
    with pytest.raises(UserAdminError, match="that would leave no enabled admin"):
        set_role(engine, "ann", "ann", "developer")
    with pytest.raises(UserAdminError, match="that would leave no enabled admin"):
        set_disabled(engine, "ann", "ann", True)
    with pytest.raises(UserAdminError, match=r"^no user 'zed'"):
        set_role(engine, "ann", "zed", "viewer")
    with pytest.raises(ValueError, match="role 'boss' is not one of"):
        set_role(engine, "ann", "cy", "boss")
    with pytest.raises(UserAdminError, match="already exists"):
        add_user(engine, "ann", entry("cy", "viewer"))
    assert [(a, action, target) for a, action, target, _ in events(staff)[before:]] == [
        ("ann", "user.set_role", "user cy"),
        ("ann", "user.enable", "user bob"),
        ("ann", "user.disable", "user root"),
        ("ann", "user.set_role.refused", "user ann"),
        ("ann", "user.disable.refused", "user ann"),
        ("ann", "user.set_role.refused", "user zed"),
        ("ann", "user.set_role.refused", "user cy"),
        ("ann", "user.add.refused", "user cy"),
    ]
    with get_engine(staff).connect() as connection:
        assert find_user(connection, "root").disabled_at is not None
        assert find_user(connection, "ann").role == "admin"


def test_import_is_one_transaction_idempotent_and_updates_only_what_it_names(
    staff: str,
) -> None:
    engine = get_engine(staff)
    file = [
        UserEntry("dee", "developer", {"team": "data", "email": "dee@example.com"}),
        UserEntry("ann", "admin", {"email": None}),  # null clears; team is kept
        UserEntry("cy", "team_lead", {}),
    ]
    before = len(events(staff))
    dry = import_users(engine, "root", file, "people.yaml", dry_run=True)
    assert (dry["added"], dry["updated"], dry["unchanged"]) == (["dee"], {"ann": ["email"]}, ["cy"])
    with get_engine(staff).connect() as connection:
        assert find_user(connection, "dee") is None
    assert len(events(staff)) == before  # a dry run writes nothing, not even its audit

    done = import_users(engine, "root", file, "people.yaml")
    assert (done["added"], done["updated"], done["dry_run"]) == (["dee"], {"ann": ["email"]}, False)
    again = import_users(engine, "root", file, "people.yaml")
    assert (again["added"], again["updated"], again["unchanged"]) == ([], {}, ["dee", "ann", "cy"])
    with get_engine(staff).connect() as connection:
        ann = find_user(connection, "ann")
        assert (ann.email, ann.team) == (None, "platform")
        assert find_user(connection, "dee").source == "timbel"
    logged = events(staff)[before:]
    assert [(action, target) for _, action, target, _ in logged] == [
        ("user.add", "user dee"),
        ("team.member.add", "team data"),
        ("user.update", "user ann"),
    ]
    assert logged[1][3] == {"user": "dee", "via": "user.add"}
    assert logged[2][3] == {"file": "people.yaml", "bootstrap": False, "changes": {"email": None}}

    # One transaction: a refusal at the end leaves the earlier entries unwritten.
    demote = [UserEntry("eli", "viewer"), UserEntry("ann", "viewer"), UserEntry("root", "viewer")]
    with pytest.raises(UserAdminError, match="would leave no enabled admin"):
        import_users(engine, "root", demote, "demote.yaml")
    with get_engine(staff).connect() as connection:
        assert find_user(connection, "eli") is None
        assert find_user(connection, "ann").role == "admin"
    with pytest.raises(UserAdminError, match="cy may not manage users"):
        import_users(engine, "cy", file, "people.yaml")
    assert [action for _, action, _, _ in events(staff)[-2:]] == ["user.import.refused"] * 2


def test_import_bootstraps_an_empty_table_only_with_an_admin(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    with pytest.raises(UserAdminError, match="the first user must be an admin"):
        import_users(engine, "root", [UserEntry("dev", "developer")], "f.yaml")
    result = import_users(engine, "root", [UserEntry("a", "admin"), UserEntry("d", "viewer")], "f")
    assert result["bootstrap"] is True and result["added"] == ["a", "d"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "role": "admin"}, "name is required"),
        ({"name": "a b", "role": "admin"}, "name must have no white space, not 'a b'"),
        ({"name": "x" * 129, "role": "admin"}, "name is longer than 128 characters"),
        ({"name": "a", "role": "boss"}, "role must be one of developer, team_lead, operations"),
        ({"name": "a", "role": "admin", "email": "nope"}, "--email must be an e-mail address"),
        ({"name": "a", "role": "admin", "slack_id": "U" * 65}, "--slack-id is longer than 64"),
    ],
)
def test_bad_fields_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        entry(**kwargs)
    assert str(error.value).startswith(message)


def test_users_file_is_checked_whole(tmp_path: Path) -> None:
    from timbel_dagster.warehouse.people.users_file import UsersFileError, load_users_file

    path = tmp_path / "people.yaml"
    path.write_text(
        "users:\n"
        "  - {name: ann, role: admin, team: platform, email: null}\n"
        "  - {name: bob, role: developer, email: nope}\n"
        "  - {name: ann, role: boss, colour: red}\n"
        "  - 5\n"
    )
    with pytest.raises(UsersFileError) as error:
        load_users_file(path)
    assert str(error.value) == (
        f"{path}: 5 problems: users[1] (bob): 'email' must be an e-mail address, not 'nope'; "
        "users[2] (ann): unknown field 'colour'; users[2] (ann): 'role' must be one of "
        "developer, team_lead, operations, admin, viewer, not 'boss'; users[2] (ann): 'name' "
        "repeats users[0]; users[3]: expected a mapping with name and role, got int"
    )
    path.write_text("users:\n  - {name: ann, role: admin, team: platform, email: null}\n")
    assert load_users_file(path) == [UserEntry("ann", "admin", {"team": "platform", "email": None})]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("people: []\n", "expected a top-level 'users:' list"),
        ("users: []\n", "the 'users:' list is empty"),
        ("users: [\n", "not valid YAML (line 2)"),
        ("users:\n  - {name: a, role: admin}\nextra: 1\n", "unknown top-level key(s) extra"),
        ("users:\n  - {role: admin}\n", "users[0]: 'name' is required"),
        ("users:\n  - {name: 7, role: admin}\n", "users[0]: 'name' must be text, not int"),
        ("users:\n  - {name: a}\n", "users[0] (a): 'role' is required: one of developer"),
        ("users:\n  - {name: a, role: admin, team: 3}\n", "'team' must be text, not int"),
    ],
)
def test_bad_users_files_are_one_line_naming_file_entry_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    from timbel_dagster.warehouse.people.users_file import UsersFileError, load_users_file

    path = tmp_path / "people.yaml"
    path.write_text(text)
    with pytest.raises(UsersFileError) as error:
        load_users_file(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(UsersFileError, match=r"cannot read .*: No such file"):
        load_users_file(tmp_path / "absent.yaml")


def test_listing_a_team_lists_its_members_whatever_their_home_team(staff: str) -> None:
    """ann's home team is platform; made a member of payments too, she is one of its people
    (approvals follow membership, so the list must too)."""
    from timbel_dagster.identity.teams import set_member

    set_member(get_engine(staff), "root", "payments", "ann")
    with get_engine(staff).connect() as connection:
        assert [p.name for p in list_users(connection, team="payments")] == ["ann", "cy"]
        assert [p.name for p in list_users(connection, team="platform")] == ["ann", "root"]
