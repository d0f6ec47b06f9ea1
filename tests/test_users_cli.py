"""`timbel users` end to end: people added, listed, disabled and imported without SQL, on
SQLite and PostgreSQL, every change audited as the acting user."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.test_cli import invoke
from timbel_dagster.cli.tables import WIDTH, render
from timbel_dagster.cli.users import COLUMNS, EMPTY
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

FIRST = "the users table was empty, so anyone may add the first user (audited as root)"


def _audit(url: str) -> list[tuple[str, str, str | None]]:
    with get_engine(url).connect() as connection:
        assert verify_chain(connection).intact
        query = select(AuditEvent.actor, AuditEvent.action, AuditEvent.target).order_by(
            AuditEvent.id
        )
        return [tuple(r) for r in connection.execute(query.order_by(AuditEvent.id))]


def test_people_are_managed_without_sql(warehouse_url: str, tmp_path: Path) -> None:
    def timbel(*args: str, user: str = "root"):
        return invoke(
            ["users", *args], tmp_path, TIMBEL_DATABASE_URL=warehouse_url, TIMBEL_USER=user
        )

    def error(completed) -> str:
        assert completed.returncode == 2 and completed.stdout == "", completed.stdout
        assert completed.stderr.count("\n") == 1, completed.stderr
        return completed.stderr

    assert timbel("list").stdout == EMPTY + "\n"
    assert "the first user must be an admin" in error(timbel("add", "dev", "--role", "developer"))
    first = timbel("add", "root", "--role", "admin", "--team", "platform")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"added user root (role admin, team platform)\n{FIRST}; from now on only an admin may "
        "manage users\n"
    )
    assert error(timbel("add", "bob", "--role", "boss")).startswith(
        "timbel: error: role must be one of developer, team_lead, operations, admin, viewer"
    )
    added = timbel(
        "add", "bob", "--role", "developer", "--team", "payments", "--email", "bob@example.com",
        "--display-name", "Bob Stone", "--slack-id", "U0000042",
    )  # fmt: skip
    assert added.stdout == "added user bob (role developer, team payments)\n", added.stderr
    assert error(timbel("add", "eve", "--role", "admin", user="bob")) == (
        "timbel: error: bob may not manage users: only an admin may (their role is developer)\n"
    )

    listed = timbel("list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "ROLE", "TEAM", "DISPLAY", "NAME", "EMAIL", "STATUS"]
    assert set(listed[1]) == {"─"}  # the shared tables' rule under the header
    assert listed[2].split() == [
        "bob", "developer", "payments", "Bob", "Stone", "bob@example.com", "enabled",
    ]  # fmt: skip
    assert listed[3].split() == ["root", "admin", "platform", "-", "-", "enabled"]
    assert listed[4] == "2 users"
    as_json = json.loads(timbel("list", "--json").stdout)
    assert [(u["name"], u["role"], u["team"], u["enabled"]) for u in as_json] == [
        ("bob", "developer", "payments", True),
        ("root", "admin", "platform", True),
    ]
    assert as_json[0]["slack_id"] == "U0000042" and as_json[0]["source"] == "timbel"

    # A disabled user cannot act, and is listed only with --all.
    assert timbel("disable", "bob").stdout.startswith("bob disabled: they may no longer act")
    assert timbel("disable", "bob").stdout == "bob is already disabled: nothing changed\n"
    refused = invoke(
        ["deploy", "request", "shop-api", "registry.example.com/shop/api:1.0", "--group", "dev"],
        tmp_path,
        TIMBEL_DATABASE_URL=warehouse_url,
        TIMBEL_USER="bob",
    )
    assert error(refused) == (
        "timbel: error: user 'bob' is disabled: an admin can enable them with "
        "`timbel users enable bob`\n"
    )
    enabled = timbel("list").stdout.splitlines()
    assert [line.split()[0] for line in enabled[:1] + enabled[2:]] == ["NAME", "root", "1"]
    assert timbel("list", "--role", "developer").stdout == (
        "no enabled user with role developer (`--all` includes disabled users)\n"
    )
    everyone = timbel("list", "--all").stdout.splitlines()
    assert everyone[2].split()[0] == "bob" and " disabled 20" in everyone[2]
    assert error(timbel("list", "--role", "boss")).startswith("timbel: error: role 'boss' is not")
    assert timbel("enable", "bob").stdout == "bob enabled\n"
    assert timbel("set-role", "bob", "team_lead").stdout == "bob: role developer -> team_lead\n"
    assert "that would leave no enabled admin" in error(timbel("disable", "root"))

    # Import: checked whole, one transaction, idempotent.
    people = tmp_path / "people.yaml"
    people.write_text("users:\n  - {name: cy, role: viewer}\n  - {name: bob, role: chief}\n")
    assert error(timbel("import", str(people))) == (
        f"timbel: error: {people}: users[1] (bob): 'role' must be one of developer, "
        "team_lead, operations, admin, viewer, not 'chief'\n"
    )
    people.write_text(
        "users:\n"
        "  - {name: cy, role: viewer, team: data}\n"
        "  - {name: bob, role: team_lead, email: null}\n"
        "  - {name: root, role: admin}\n"
    )
    dry = timbel("import", str(people), "--dry-run")
    assert dry.stdout == (
        f"  add     cy\n  update  bob: email\n{people}: 1 added, 1 updated, 1 unchanged "
        "(dry run: nothing was written)\n"
    ), dry.stderr
    assert timbel("import", str(people)).stdout.endswith(
        f"{people}: 1 added, 1 updated, 1 unchanged\n"
    )
    again = timbel("import", str(people), "--json")
    assert json.loads(again.stdout)["unchanged"] == ["cy", "bob", "root"]

    assert _audit(warehouse_url) == [
        ("root", "user.add.refused", "user dev"),
        ("root", "user.add", "user root"),
        ("root", "user.add", "user bob"),
        ("bob", "user.add.refused", "user eve"),
        ("root", "user.disable", "user bob"),
        ("bob", "deploy.request.refused", "shop-api -> dev"),
        ("root", "user.enable", "user bob"),
        ("root", "user.set_role", "user bob"),
        ("root", "user.disable.refused", "user root"),
        ("root", "user.add", "user cy"),
        ("root", "user.update", "user bob"),
    ]


def test_the_sample_organisation_is_listed_with_roles_and_teams(tmp_path: Path) -> None:
    from timbel_dagster.resources.sample.organisation import USERS
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.store.loaders import store_users

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    migrate.upgrade(url)
    with get_engine(url).begin() as connection:
        store_users(connection, "sample", USERS)
    listed = invoke(["users", "list", "--team", "payments"], tmp_path, TIMBEL_DATABASE_URL=url)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:3] for line in listed.stdout.splitlines()[2:-1]]
    assert rows == [
        ["jaehyun.park", "developer", "payments"],
        ["minji.kim", "developer", "payments"],
        ["soyeon.lee", "team_lead", "payments"],
    ]
    assert listed.stdout.splitlines()[-1] == "3 users"


def test_the_table_fits_100_columns_and_shows_missing_values_as_a_dash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal still gets at most WIDTH
    long = {
        "name": "someone.with.a.very.long.login.name",
        "role": "operations",
        "team": "platform-reliability-engineering",
        "display_name": "Someone With A Remarkably Long Display Name",
        "email": "someone.with.a.very.long.login.name@subsidiary.example.com",
        "disabled_at": dt.datetime(2026, 11, 30, 17, 5, tzinfo=dt.UTC),
    }
    short = dict.fromkeys(long, None) | {"name": "a", "role": "viewer"}
    lines = render([long, short], COLUMNS).splitlines()
    assert max(len(line) for line in lines) <= WIDTH == 100
    assert lines[0].startswith("NAME") and "…" in lines[2]
    assert lines[2].endswith("disabled 2026-11-30")
    assert lines[3].split() == ["a", "viewer", "-", "-", "-", "enabled"]
