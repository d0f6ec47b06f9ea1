"""Service accounts (`users.kind = service`): added and imported by admins like people,
listed with their kind, holding API tokens, and never the admin Timbel keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.warehouse.test_users import add_teams, events
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.identity.tokens import create_token, verify_token
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.people.user_admin import (
    add_user,
    import_users,
    set_disabled,
    set_role,
)
from timbel_dagster.warehouse.people.users import (
    UserAdminError,
    UserEntry,
    entry,
    find_user,
    list_users,
)
from timbel_dagster.warehouse.people.users_file import UsersFileError, load_users_file


def test_a_service_account_is_added_by_an_admin_audited_and_holds_tokens(
    warehouse_url: str,
) -> None:
    add_teams(warehouse_url, "payments")
    engine = get_engine(warehouse_url)
    add_user(engine, "root", entry("root", "admin"))
    add_user(engine, "root", entry("dev", "developer"))
    bot = entry("release-bot", "developer", team="payments", kind="service")
    with pytest.raises(UserAdminError, match="dev may not manage users"):
        add_user(engine, "dev", bot)
    added = add_user(engine, "root", bot)
    assert added["user"]["kind"] == "service" and added["user"]["email"] is None
    assert added["teams"] == ["+payments"]
    assert [(actor, action) for actor, action, _, _ in events(warehouse_url)][-3:] == [
        ("dev", "user.add.refused"), ("root", "user.add"), ("root", "team.member.add"),
    ]  # fmt: skip
    assert events(warehouse_url)[-2][3]["kind"] == "service"

    with engine.connect() as connection:
        assert [p.name for p in list_users(connection, kind="service")] == ["release-bot"]
        assert [p.name for p in list_users(connection, kind="person")] == ["dev", "root"]
        with pytest.raises(ValueError, match="kind 'robot' is not one of person, service"):
            list_users(connection, kind="robot")
        assert load_principal(connection, "release-bot").kind == "service"

    # Its tokens are made by an admin and act as it.
    made = create_token(engine, "root", "release-bot", label="release pipeline")
    who = verify_token(engine, made["secret"])
    assert (who.user, who.kind, who.teams, who.via) == ("release-bot", "service", ("payments",),
                                                       "token")  # fmt: skip


def test_a_service_account_is_never_the_admin_timbel_keeps(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    with pytest.raises(UserAdminError, match=r"must be an admin \(--role admin\) and a person"):
        add_user(engine, "root", entry("ops-bot", "admin", kind="service"))
    add_user(engine, "root", entry("root", "admin"))
    add_user(engine, "root", entry("ops-bot", "admin", kind="service"))
    with pytest.raises(UserAdminError, match=r"no enabled admin \(a person: service accounts"):
        set_disabled(engine, "root", "root", True)
    with pytest.raises(UserAdminError, match="no enabled admin"):
        set_role(engine, "root", "root", "viewer")
    with pytest.raises(UserAdminError, match="no enabled admin"):  # a person made a service
        import_users(engine, "root", [UserEntry("root", "admin", kind="service")], "f.yaml")
    with engine.connect() as connection:
        assert find_user(connection, "root").kind == "person"


def test_a_users_file_says_kind_and_an_import_changes_it(
    warehouse_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(
        "users:\n"
        "  - {name: root, role: admin}\n"
        "  - {name: ci-bot, role: developer, kind: service}\n"
    )
    entries = load_users_file(path)
    assert entries == [
        UserEntry("root", "admin", {}),
        UserEntry("ci-bot", "developer", {}, "service"),
    ]
    engine = get_engine(warehouse_url)
    result = import_users(engine, "root", entries, str(path))
    assert result["added"] == ["root", "ci-bot"]
    with engine.connect() as connection:
        assert [(p.name, p.kind) for p in list_users(connection)] == [
            ("ci-bot", "service"), ("root", "person"),
        ]  # fmt: skip
    # Left out: kept. Given: changed, as any field.
    kept = import_users(engine, "root", [UserEntry("ci-bot", "developer")], "f.yaml")
    assert kept["unchanged"] == ["ci-bot"]
    turned = import_users(engine, "root", [UserEntry("ci-bot", "developer", {}, "person")], "f")
    assert turned["updated"] == {"ci-bot": ["kind"]}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{name: a, role: admin, kind: robot}",
         "users[0] (a): 'kind' must be one of person, service, not 'robot'"),
        ("{name: a, role: admin, kind: null}",
         "users[0] (a): 'kind' cannot be null: person or service"),
    ],
)  # fmt: skip
def test_a_bad_kind_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(f"users:\n  - {line}\n")
    with pytest.raises(UsersFileError) as error:
        load_users_file(path)
    assert str(error.value) == f"{path}: {message}"
