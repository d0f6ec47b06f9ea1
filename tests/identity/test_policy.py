"""The policy table: every role in it is known, no action twice, admin everywhere;
`timbel access policy` prints it as a table, JSON or the markdown docs/api.md carries (and
that document is current); `may` applies roles and scopes with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import invoke
from timbel_dagster.identity.authorize import NotAllowedError, Target, may, require
from timbel_dagster.identity.policy import POLICY, RULES, Scope, markdown, rule
from timbel_dagster.identity.principal import Principal
from timbel_dagster.warehouse.schema.models import USER_ROLES


def test_the_table_is_sane() -> None:
    actions = [r.action for r in POLICY]
    assert len(actions) == len(set(actions)) == len(RULES)
    for item in POLICY:
        assert item.roles <= set(USER_ROLES), item.action
        assert "admin" in item.roles, item.action
        assert item.note and "|" not in item.note, item.action
        assert isinstance(item.scope, Scope)
    with pytest.raises(KeyError, match=r"no action 'deploy\.nothing'"):
        rule("deploy.nothing")


DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _policy(tmp_path: Path, *options: str):
    # No warehouse and no settings: the command reads the table in the code only.
    return invoke(["access", "policy", *options], tmp_path)


def test_markdown_has_one_row_per_action() -> None:
    text = markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [r.action for r in POLICY]
    assert "| `audit.search` | operations, admin | global | no |" in text
    assert "| `executions.read` | everyone | tenant | no |" in text


def test_docs_api_md_carries_what_timbel_access_policy_markdown_prints(tmp_path: Path) -> None:
    printed = _policy(tmp_path, "--markdown")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == markdown()
    assert printed.stdout in DOCS.read_text(encoding="utf-8"), (
        "docs/api.md's policy table is not the one `timbel access policy --markdown` prints; "
        "replace it with:\n" + printed.stdout
    )


def test_timbel_access_policy_prints_a_table_and_json(tmp_path: Path) -> None:
    table = _policy(tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ACTION", "ROLES", "SCOPE", "WRITE", "WHAT"]
    assert set(lines[1]) == {"─"}
    assert lines[2].split()[:5] == ["executions.read", "everyone", "tenant", "no", "executions,"]
    audit = next(line for line in lines if line.startswith("audit.search "))
    assert audit.split()[:5] == ["audit.search", "operations,", "admin", "global", "no"]
    assert lines[-1] == f"{len(POLICY)} actions; an admin may take every one"
    assert max(len(line) for line in lines) <= 100

    rows = json.loads(_policy(tmp_path, "--json").stdout)
    assert [r["action"] for r in rows] == [r.action for r in POLICY]
    assert rows[0] == {
        "action": "executions.read",
        "roles": ["developer", "team_lead", "operations", "admin", "viewer"],
        "roles_text": "everyone",
        "scope": "tenant",
        "write": False,
        "note": "executions, their stages and timelines",
    }
    approve = next(r for r in rows if r["action"] == "deploy.approve")
    assert (approve["roles"], approve["scope"], approve["write"]) == (
        ["team_lead", "operations", "admin"], "team", True,
    )  # fmt: skip

    both = _policy(tmp_path, "--json", "--markdown")
    assert (both.returncode, both.stdout) == (2, "")
    assert both.stderr == "timbel: error: --json and --markdown: choose one\n"


def test_the_policy_module_has_no_printer_of_its_own() -> None:
    """The old `python -m timbel_dagster.identity.policy --markdown` printer is gone: the
    table is printed by `timbel access policy` only."""
    import timbel_dagster.identity.policy as module

    assert not hasattr(module, "main")
    assert "__main__" not in Path(module.__file__).read_text(encoding="utf-8")


def _p(role: str, teams: tuple[str, ...] = (), tenants: tuple[str, ...] = ()) -> Principal:
    return Principal(user=f"a_{role}", role=role, teams=teams, tenants=tenants)


@pytest.mark.parametrize(
    ("principal", "action", "target", "allowed", "reason"),
    [
        (_p("viewer"), "executions.read", None, True, "member of the tenant"),
        (_p("viewer"), "logs.read", None, False, "logs.read needs developer or operations"),
        (_p("developer", tenants=("shop",)), "cost.read", Target(tenant="shop"), False,
         "needs operations or team_lead or admin"),
        (_p("team_lead", tenants=("shop",)), "cost.read", Target(tenant="shop"), True, "member"),
        (_p("team_lead", tenants=("shop",)), "cost.read", Target(tenant="ads"), False,
         "not a member of tenant ads"),
        (_p("operations"), "cost.read", Target(tenant="ads"), True, "every team and tenant"),
        (_p("team_lead", teams=("shop",)), "deploy.approve", Target(team="shop"), True,
         "in team shop"),
        (_p("team_lead", teams=("shop",)), "deploy.approve", Target(team="payments"), False,
         "needs a member of team payments; a_team_lead (team_lead) is in shop"),
        (_p("team_lead", teams=("shop",)), "deploy.approve", Target(), False,
         "`timbel team own SERVICE --team TEAM`"),
        (_p("operations"), "deploy.approve", Target(team="payments"), True, "every team"),
        (_p("admin"), "identity.users", None, True, "is an admin"),
        (_p("operations"), "identity.users", None, False, "needs admin"),
        (_p("developer"), "identity.tokens.own", Target(owner="a_developer"), True, "own"),
        (_p("developer"), "identity.tokens.own", Target(owner="ops"), False, "needs an admin"),
    ],
)  # fmt: skip
def test_may(principal, action, target, allowed, reason) -> None:
    decision = may(principal, action, target)
    assert decision.allowed is allowed and reason in decision.reason
    if not allowed:
        with pytest.raises(NotAllowedError) as error:
            require(principal, action, target)
        assert str(error.value) == decision.reason
