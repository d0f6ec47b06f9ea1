"""`may(principal, action, target)`: the policy table applied to one principal and one
thing acted on. The outer gate: the domain keeps its own checks (an approval's chain step,
a template's owner), and the CLI and the API both pass through them."""

from __future__ import annotations

from dataclasses import dataclass

from timbel_dagster.identity.policy import ADMIN, ALL_SCOPES, Scope, rule
from timbel_dagster.identity.principal import Principal


class NotAllowedError(ValueError):
    """The principal may not take the action; nothing changed."""


@dataclass(frozen=True)
class Target:
    """What an action is about, as far as the scope needs it: the team that owns the service,
    the tenant the data belongs to, the user who owns the thing (a token)."""

    team: str | None = None
    tenant: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def _roles(allowed: frozenset[str]) -> str:
    return " or ".join([*sorted(r for r in allowed if r != ADMIN), ADMIN])


def may(principal: Principal, action: str, target: Target | None = None) -> Decision:
    """Whether `principal` may take `action` on `target`, and why (or why not)."""
    item = rule(action)
    target = target or Target()
    who = f"{principal.user} ({principal.role})"
    if principal.role == ADMIN:
        return Decision(True, f"{who} is an admin")
    if principal.role not in item.roles:
        return Decision(False, f"{action} needs {_roles(item.roles)}; {who} is not one")
    if item.scope is Scope.GLOBAL:
        return Decision(True, f"{action} is open to {principal.role}")
    if item.scope is Scope.SELF:
        if target.owner is None or target.owner == principal.user:
            return Decision(True, f"{who} acts on their own")
        return Decision(False, f"{action} is for one's own; {target.owner}'s needs an admin")
    if principal.role in ALL_SCOPES:
        return Decision(True, f"{principal.role} acts for every team and tenant")
    if item.scope is Scope.TENANT:
        if target.tenant is None or target.tenant in principal.tenants:
            return Decision(True, f"{who} is a member of the tenant")
        return Decision(False, f"{who} is not a member of tenant {target.tenant}")
    # Scope.TEAM
    if target.team is None:
        return Decision(
            False,
            f"{action} needs the service's owning team, and no team owns it: an admin can set "
            "it with `timbel team own SERVICE --team TEAM`",
        )
    if target.team in principal.teams:
        return Decision(True, f"{who} is in team {target.team}, which owns the service")
    teams = ", ".join(principal.teams) or "no team"
    return Decision(False, f"{action} needs a member of team {target.team}; {who} is in {teams}")


def may_role(principal: Principal, action: str) -> Decision:
    """Whether `principal`'s role may take `action` at all, before the thing acted on is
    known (the API's outer gate); the scope (team, tenant, owner) is checked with `may` once
    the route has found the thing."""
    item = rule(action)
    who = f"{principal.user} ({principal.role})"
    if principal.role == ADMIN or principal.role in item.roles:
        return Decision(True, f"{action} is open to {principal.role}")
    return Decision(False, f"{action} needs {_roles(item.roles)}; {who} is not one")


def require(principal: Principal, action: str, target: Target | None = None) -> None:
    """Raise NotAllowedError with the reason unless `may` allows it."""
    decision = may(principal, action, target)
    if not decision.allowed:
        raise NotAllowedError(decision.reason)
