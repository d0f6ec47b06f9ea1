"""The one policy table: which roles may take each action, over which scope.

Each API route and each CLI command names one action. `authorize.may` reads this table;
`timbel access policy` prints it (a table, `--json` from `as_rows`, `--markdown` from
`markdown`), and docs/api.md carries `markdown()` verbatim (tests/identity/test_policy.py
fails when they differ), so the code and the docs cannot drift apart.

Scopes:
- GLOBAL: the rule is about the role alone.
- TENANT: rows are limited to the principal's tenants (operations and admin see all).
- TEAM: the thing acted on (a service) must be owned by one of the principal's teams
  (operations and admin act for every team).
- SELF: the principal's own things (tokens, subscriptions); admin may act for anyone.

An admin may do everything: every rule includes the admin role.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from timbel_dagster.warehouse.schema.models import USER_ROLES


class Scope(enum.StrEnum):
    GLOBAL = "global"
    TENANT = "tenant"
    TEAM = "team"
    SELF = "self"


ADMIN = "admin"
# Roles that act for every team and see every tenant (a TEAM or TENANT scope passes).
ALL_SCOPES = frozenset({"operations", ADMIN})


def roles(*names: str) -> frozenset[str]:
    """The roles given, and admin (who may do everything)."""
    return frozenset((*names, ADMIN))


EVERYONE = roles(*USER_ROLES)
DEVELOPERS_UP = roles("developer", "team_lead", "operations")


@dataclass(frozen=True)
class Rule:
    action: str  # "deploy.approve", "executions.read", ...
    roles: frozenset[str]
    scope: Scope
    write: bool  # audited on success and on refusal; the write rate bucket
    note: str  # one line for the docs


G, TN, TM, S = Scope.GLOBAL, Scope.TENANT, Scope.TEAM, Scope.SELF
POLICY: tuple[Rule, ...] = (
    Rule("executions.read", EVERYONE, TN, False, "executions, their stages and timelines"),
    Rule("pipelines.read", EVERYONE, TN, False, "pipelines and their duration statistics"),
    Rule("metrics.read", EVERYONE, TN, False, "DORA metrics"),
    Rule("logs.read", DEVELOPERS_UP, TN, False, "an execution's logs"),
    Rule("logs.search", DEVELOPERS_UP, TN, False, "full-text search of the logs"),
    Rule("deploy.read", EVERYONE, TN, False, "requests, their status, risk and similar ones"),
    # Global, as the domain has it: anyone may ask, the owning team's lead decides.
    Rule("deploy.request", roles("developer", "team_lead", "operations"), G, True,
         "request a deployment of a known service (its owning team approves)"),
    Rule("deploy.approve", roles("team_lead", "operations"), TM, True,
         "by the chain's step: a team lead for their team's services, operations for all"),
    Rule("deploy.reject", roles("team_lead", "operations"), TM, True,
         "as deploy.approve"),
    # As the domain allows it (`deploy/emergency.py`): a team lead may fast-track too.
    Rule("deploy.fast_track", roles("team_lead", "operations"), TM, True,
         "skip the chain in an emergency (reviewed afterwards)"),
    Rule("deploy.review", roles("team_lead", "operations"), TM, True,
         "review a fast-tracked request afterwards"),
    Rule("rollbacks.read", EVERYONE, TN, False, "rollbacks and their outcome"),
    Rule("rollbacks.request", roles("operations"), G, True, "launch a rollback (a run grant)"),
    Rule("security.read", EVERYONE, TN, False,
         "vulnerability findings and the gate's verdict, of images one's tenants used"),
    Rule("templates.read", EVERYONE, G, False,
         "templates (their visibility rules still apply)"),
    Rule("templates.write", DEVELOPERS_UP, G, True,
         "publish, share, roll back (owner and team checks still apply)"),
    Rule("templates.rate", DEVELOPERS_UP, G, True, "rate and review a template"),
    Rule("templates.retire", DEVELOPERS_UP, G, True,
         "retire a template: hidden, no new versions or ratings (its owner or an admin)"),
    Rule("templates.restore", DEVELOPERS_UP, G, True,
         "put a retired template back in use (its owner or an admin)"),
    Rule("tenants.read", EVERYONE, TN, False, "a tenant's quota, users and clusters"),
    Rule("tenants.create", roles("operations"), G, True,
         "provision a tenant (a run grant)"),
    Rule("tenants.delete", roles("operations"), G, True, "delete a tenant (a run grant)"),
    Rule("cost.read", roles("team_lead", "operations"), TN, False, "monthly cost by tenant"),
    Rule("alerts.read", EVERYONE, G, False, "alerts and their events"),
    Rule("slos.read", EVERYONE, TN, False,
         "SLO status (SLI, error budget, burn rates) of the services of one's tenants"),
    Rule("alerts.rules.write", roles("operations"), G, True, "change alert rules"),
    Rule("alerts.silence", roles("operations"), G, True, "silence alerts"),
    Rule("audit.search", roles("operations"), G, False, "search the audit log"),
    Rule("notify.subscriptions", EVERYONE, S, True, "one's own notification subscriptions"),
    Rule("identity.tokens.own", EVERYONE, S, True, "create, list and revoke one's own tokens"),
    Rule("identity.tokens.any", roles(), G, True, "anyone's tokens"),
    Rule("identity.users", roles(), G, True, "add users, change roles, disable"),
    Rule("identity.teams", roles(), G, True, "teams, their members, which team owns a service"),
)  # fmt: skip
RULES: dict[str, Rule] = {rule.action: rule for rule in POLICY}


def rule(action: str) -> Rule:
    """The rule of `action`; a name not in the table is a defect, not a refusal."""
    try:
        return RULES[action]
    except KeyError:
        raise KeyError(f"no action {action!r} in the policy table") from None


def ordered_roles(allowed: Iterable[str]) -> list[str]:
    """The roles of `allowed` in USER_ROLES' order."""
    allowed = set(allowed)
    return [r for r in USER_ROLES if r in allowed]


def roles_text(allowed: Iterable[str]) -> str:
    """The roles as the docs word them: `everyone`, or `team_lead, operations, admin`."""
    ordered = ordered_roles(allowed)
    return "everyone" if len(ordered) == len(USER_ROLES) else ", ".join(ordered)


def as_rows(policy: Iterable[Rule] = POLICY) -> list[dict[str, Any]]:
    """The table as plain rows, one per action (`timbel access policy --json`): `roles` in
    full, `roles_text` as the docs word it."""
    return [
        {
            "action": item.action,
            "roles": ordered_roles(item.roles),
            "roles_text": roles_text(item.roles),
            "scope": item.scope.value,
            "write": item.write,
            "note": item.note,
        }
        for item in policy
    ]


def markdown(policy: Iterable[Rule] = POLICY) -> str:
    """The table as markdown, one row per action, from `as_rows` as the command's other
    formats: `timbel access policy --markdown`, and docs/api.md carries it verbatim."""
    lines = [
        "| action | roles | scope | write | what |",
        "|---|---|---|---|---|",
    ]
    for row in as_rows(policy):
        write = "yes" if row["write"] else "no"
        lines.append(
            f"| `{row['action']}` | {row['roles_text']} | {row['scope']} | {write} "
            f"| {row['note']} |"
        )
    return "\n".join(lines) + "\n"
