"""The policy table: every role in it is known, no action twice, admin everywhere, the
markdown renders every action; `may` applies roles and scopes with a reason."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_markdown_has_one_row_per_action_and_runs_as_a_module() -> None:
    text = markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [r.action for r in POLICY]
    assert "| `audit.search` | operations, admin | global | no |" in text
    assert "| `executions.read` | everyone | tenant | no |" in text
    printed = subprocess.run(
        [sys.executable, "-m", "timbel_dagster.identity.policy", "--markdown"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert printed.stdout == text


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
