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
from timbel_dagster.identity.tokens import verify_token
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
    def timbel(*args: str, user: str = "root", group: str = "users"):
        return invoke([group, *args], tmp_path, TIMBEL_DATABASE_URL=warehouse_url, TIMBEL_USER=user)

    def error(completed) -> str:
        assert completed.returncode == 2 and completed.stdout == "", completed.stdout
        assert completed.stderr.count("\n") == 1, completed.stderr
        return completed.stderr

    assert timbel("list").stdout == EMPTY + "\n"
    assert "the first user must be an admin" in error(timbel("add", "dev", "--role", "developer"))
    # No team exists yet, and only an admin may add one: the first admin comes without one.
    assert "add them without --team" in error(
        timbel("add", "root", "--role", "admin", "--team", "platform")
    )
    first = timbel("add", "root", "--role", "admin")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"added user root (role admin)\n{FIRST}; from now on only an admin may manage users\n"
    )
    for team in ("platform", "payments", "data"):
        assert timbel("add", team, group="team").returncode == 0
    assert error(timbel("add", "bob", "--role", "boss")).startswith(
        "timbel: error: role must be one of developer, team_lead, operations, admin, viewer"
    )
    added = timbel(
        "add", "bob", "--role", "developer", "--team", "payments", "--email", "bob@example.com",
        "--display-name", "Bob Stone", "--slack-id", "U0000042",
    )  # fmt: skip
    assert added.stdout == (
        "added user bob (role developer, team payments)\nbob joined team payments\n"
    ), added.stderr
    assert error(timbel("add", "eve", "--role", "admin", user="bob")) == (
        "timbel: error: bob may not manage users: only an admin may (their role is developer)\n"
    )

    listed = timbel("list").stdout.splitlines()
    assert listed[0].split() == [
        "NAME", "ROLE", "KIND", "TEAM", "DISPLAY", "NAME", "EMAIL", "STATUS",
    ]  # fmt: skip
    assert set(listed[1]) == {"─"}  # the shared tables' rule under the header
    assert listed[2].split() == [
        "bob", "developer", "person", "payments", "Bob", "Stone", "bob@example.com", "enabled",
    ]  # fmt: skip
    assert listed[3].split() == ["root", "admin", "person", "-", "-", "-", "enabled"]
    assert listed[4] == "2 users"
    as_json = json.loads(timbel("list", "--json").stdout)
    assert [(u["name"], u["role"], u["kind"], u["team"], u["enabled"]) for u in as_json] == [
        ("bob", "developer", "person", "payments", True),
        ("root", "admin", "person", None, True),
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
        f"  add     cy\n  update  bob: email\n  teams   cy: +data\n{people}: 1 added, "
        "1 updated, 1 unchanged (dry run: nothing was written)\n"
    ), dry.stderr
    assert timbel("import", str(people)).stdout.endswith(
        f"{people}: 1 added, 1 updated, 1 unchanged\n"
    )
    again = timbel("import", str(people), "--json")
    assert json.loads(again.stdout)["unchanged"] == ["cy", "bob", "root"]

    assert _audit(warehouse_url) == [
        ("root", "user.add.refused", "user dev"),
        ("root", "user.add.refused", "user root"),
        ("root", "user.add", "user root"),
        ("root", "team.add", "team platform"),
        ("root", "team.add", "team payments"),
        ("root", "team.add", "team data"),
        ("root", "user.add", "user bob"),
        ("root", "team.member.add", "team payments"),
        ("bob", "user.add.refused", "user eve"),
        ("root", "user.disable", "user bob"),
        ("bob", "deploy.request.refused", "shop-api -> dev"),
        ("root", "user.enable", "user bob"),
        ("root", "user.set_role", "user bob"),
        ("root", "user.disable.refused", "user root"),
        ("root", "user.add", "user cy"),
        ("root", "team.member.add", "team data"),
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
    rows = [line.split()[:4] for line in listed.stdout.splitlines()[2:-1]]
    assert rows == [
        ["jaehyun.park", "developer", "person", "payments"],
        ["minji.kim", "developer", "person", "payments"],
        ["soyeon.lee", "team_lead", "person", "payments"],
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
    long["kind"] = "service"
    short = dict.fromkeys(long, None) | {"name": "a", "role": "viewer", "kind": "person"}
    lines = render([long, short], COLUMNS).splitlines()
    assert max(len(line) for line in lines) <= WIDTH == 100
    assert lines[0].startswith("NAME") and "…" in lines[2]
    assert lines[2].endswith("disabled 2026-11-30") and " service " in lines[2]
    assert lines[3].split() == ["a", "viewer", "person", "-", "-", "-", "enabled"]


def test_service_accounts_and_team_memberships(warehouse_url: str, tmp_path: Path) -> None:
    def timbel(*args: str, user: str = "root"):
        return invoke(list(args), tmp_path, TIMBEL_DATABASE_URL=warehouse_url, TIMBEL_USER=user)

    assert timbel("users", "add", "root", "--role", "admin").returncode == 0
    unknown = timbel("users", "add", "bot", "--role", "developer", "--team", "payments",
                     "--service")  # fmt: skip
    assert unknown.returncode == 2 and unknown.stderr == (
        "timbel: error: no team 'payments' for user 'bot': add it first with "
        "`timbel team add payments`\n"
    )
    assert timbel("team", "add", "payments").returncode == 0
    added = timbel("users", "add", "bot", "--role", "developer", "--team", "payments",
                   "--service")  # fmt: skip
    assert added.stdout == (
        "added service account bot (role developer, team payments)\n"
        "bot joined team payments\n"
        "it acts through API tokens: `timbel token create --user bot`\n"
    ), added.stderr
    # The membership approvals read, as `timbel team list` shows it.
    teams = json.loads(timbel("team", "list", "--json").stdout)
    assert [(t["name"], t["members"]) for t in teams] == [("payments", ["bot"])]

    listed = timbel("users", "list", "--kind", "service").stdout.splitlines()
    assert listed[2].split() == ["bot", "developer", "service", "payments", "-", "-", "enabled"]
    assert listed[3] == "1 user"
    people = json.loads(timbel("users", "list", "--kind", "person", "--json").stdout)
    assert [(u["name"], u["kind"]) for u in people] == [("root", "person")]
    assert timbel("users", "list", "--kind", "service", "--role", "admin").stdout == (
        "no enabled user with role admin and kind service (`--all` includes disabled users)\n"
    )

    # An admin makes its tokens; it acts as the service account.
    made = timbel("token", "create", "--user", "bot", "--label", "release pipeline")
    assert made.returncode == 0, made.stderr
    who = verify_token(get_engine(warehouse_url), made.stdout.splitlines()[1])
    assert (who.user, who.kind) == ("bot", "service")

    people_file = tmp_path / "people.yaml"
    people_file.write_text("users:\n  - {name: ci, role: viewer, kind: service, team: payments}\n")
    imported = timbel("users", "import", str(people_file))
    assert imported.stdout == f"  add     ci\n  teams   ci: +payments\n{people_file}: 1 added, " \
        "0 updated, 0 unchanged\n", imported.stderr  # fmt: skip
    assert [a for _, a, _ in _audit(warehouse_url)] == [
        "user.add", "user.add.refused", "team.add", "user.add", "team.member.add",
        "token.create", "user.add", "team.member.add",
    ]  # fmt: skip
