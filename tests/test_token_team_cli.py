"""`timbel token` and `timbel team` end to end on SQLite and PostgreSQL: the secret printed
once and never listed, revoked by prefix; teams built by an admin; bad input one line with
exit code 2 and nothing written; every change audited as the acting user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.deploy.known import know
from tests.identity.people import store_people
from tests.test_cli import invoke
from timbel_dagster.cli.tokens import NOT_SHOWN_AGAIN
from timbel_dagster.identity.tokens import verify_token
from timbel_dagster.warehouse.audit.chain import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent


def _actions(url: str) -> list[tuple[str, str]]:
    with get_engine(url).connect() as connection:
        assert verify_chain(connection).intact
        query = select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        return [tuple(r) for r in connection.execute(query)]


@pytest.fixture
def timbel(warehouse_url: str, tmp_path: Path):
    store_people(warehouse_url)

    def run(*args: str, user: str = "admin"):
        return invoke(list(args), tmp_path, TIMBEL_DATABASE_URL=warehouse_url, TIMBEL_USER=user)

    return run


def _error(completed) -> str:
    assert completed.returncode == 2 and completed.stdout == "", completed.stdout
    assert completed.stderr.count("\n") == 1, completed.stderr
    return completed.stderr.removeprefix("timbel: error: ").rstrip("\n")


def test_a_token_is_printed_once_listed_without_its_secret_and_revoked(
    timbel, warehouse_url: str
) -> None:
    made = timbel(
        "token", "create", "--user", "dev", "--expires", "30d", "--label", "ci", user="dev"
    )
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    secret = lines[1]
    assert secret.startswith("tbl_") and lines[2] == NOT_SHOWN_AGAIN
    assert lines[0].startswith(f"created token {secret[:12]} for dev (expires ")
    assert verify_token(get_engine(warehouse_url), secret).user == "dev"

    as_json = json.loads(timbel("token", "create", "--user", "ops", "--json").stdout)
    assert as_json["secret"].startswith("tbl_") and as_json["note"] == NOT_SHOWN_AGAIN

    listed = timbel("token", "list", user="dev")
    assert listed.returncode == 0 and secret not in listed.stdout
    header, _rule, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["PREFIX", "USER", "LABEL"]
    assert rows[0].split()[:3] == [secret[:12], "dev", "ci"]
    assert rows[0].split()[-1] == "active"
    assert rows[-1] == "1 token"  # dev sees their own only
    every = json.loads(timbel("token", "list", "--json").stdout)  # the admin sees all
    assert sorted(t["user_name"] for t in every) == ["dev", "ops"]
    assert all("secret" not in t and "secret_sha256" not in t for t in every)

    revoked = timbel("token", "revoke", secret[:12], user="dev")
    assert revoked.stdout == f"revoked token {secret[:12]} of dev\n"
    again = timbel("token", "revoke", secret[:12])
    assert again.stdout == f"token {secret[:12]} of dev was revoked already\n"
    assert "revoked" in timbel("token", "list", "--user", "dev").stdout
    assert _actions(warehouse_url) == [
        ("dev", "token.create"),
        ("admin", "token.create"),
        ("dev", "token.revoke"),
    ]


def test_token_bad_input_is_one_line_and_writes_nothing_but_the_refusal(
    timbel, warehouse_url: str
) -> None:
    assert _error(timbel("token", "create", "--user", "nobody")).startswith(
        "user 'nobody' is not in the users table"
    )
    assert _error(timbel("token", "create", "--user", "dev", "--expires", "soon")) == (
        "--expires 'soon' is not a duration: give hours, days or weeks (12h, 30d, 2w) or `never`"
    )
    assert _error(timbel("token", "create", "--user", "ops", user="dev")).startswith(
        "dev may not manage ops's tokens: only an admin may"
    )
    assert _error(timbel("token", "create", "--user", "dev", user="ghost")).startswith(
        "user 'ghost' is not in the users table"
    )
    assert _error(timbel("token", "revoke", "tbl_nothing")) == (
        "no token 'tbl_nothing': see `timbel token list`"
    )
    assert _error(timbel("token", "list", "--user", "ops", user="dev")).startswith(
        "dev may not manage ops's tokens"
    )
    assert timbel("token", "list", user="dev").stdout.startswith("no tokens of dev: create one")
    assert {action for _, action in _actions(warehouse_url)} == {
        "token.create.refused",
        "token.revoke.refused",
    }


def test_an_admin_builds_teams_and_bad_input_is_one_line(timbel, warehouse_url: str) -> None:
    know(warehouse_url, "shop-api")
    assert timbel("team", "list").stdout.startswith("no teams yet")
    assert timbel("team", "add", "shop").stdout.startswith("added team shop")
    assert timbel("team", "member", "shop", "lead").stdout == "lead joined shop\n"
    assert timbel("team", "member", "shop", "lead").stdout == (
        "lead is already a member of shop: nothing changed\n"
    )
    assert timbel("team", "member", "shop", "dev").stdout == "dev joined shop\n"
    assert timbel("team", "own", "shop-api", "--team", "shop").stdout == "shop owns shop-api\n"
    listed = timbel("team", "list").stdout.splitlines()
    assert listed[0].split() == ["TEAM", "DISPLAY", "NAME", "MEMBERS", "SERVICES"]
    assert listed[2].split() == ["shop", "-", "dev,", "lead", "shop-api"] and listed[-1] == "1 team"
    teams = json.loads(timbel("team", "list", "--json").stdout)
    assert (teams[0]["members"], teams[0]["services"]) == (["dev", "lead"], ["shop-api"])
    assert timbel("team", "member", "shop", "dev", "--remove").stdout == "dev left shop\n"

    assert _error(timbel("team", "add", "ads", user="lead")).startswith(
        "identity.teams needs admin; lead (team_lead) is not one"
    )
    assert _error(timbel("team", "member", "ads", "dev")) == (
        "no team 'ads': add it with `timbel team add ads`"
    )
    assert _error(timbel("team", "member", "shop", "nobody")).startswith(
        "user 'nobody' is not in the users table"
    )
    assert _error(timbel("team", "own", "shop-api", "--team", "ads")).startswith("no team 'ads'")
    assert _error(timbel("team", "own", "nothing-api", "--team", "shop")).startswith(
        "no service 'nothing-api' is known"
    )
    assert _actions(warehouse_url) == [
        ("admin", "team.add"),
        ("admin", "team.member.add"),
        ("admin", "team.member.add"),
        ("admin", "team.own"),
        ("admin", "team.member.remove"),
        ("lead", "team.add.refused"),
        ("admin", "team.member.add.refused"),
        ("admin", "team.member.add.refused"),
        ("admin", "team.own.refused"),
        ("admin", "team.own.refused"),
    ]
