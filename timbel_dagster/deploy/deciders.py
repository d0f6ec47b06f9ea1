"""Who may decide a request: the policy table's gate (`may_decide`, which the approvals page
and the Slack buttons both ask before deciding) and the rules of the current step that
`Requests.decide` enforces (`refusal`, which the approvals page also asks to list what a user
may decide), so that every face says the same thing.

A step is decided by someone who did not make the request and decided no earlier step of
it, whose role is the step's (or admin), and, for a team lead step, who is in the team
that owns the service (`team_check`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from timbel_dagster.deploy import lookup
from timbel_dagster.deploy.lookup import Actor, RequestError
from timbel_dagster.deploy.team_check import TEAM_LEAD, check_team
from timbel_dagster.identity.authorize import Decision, Target, may
from timbel_dagster.warehouse.people.membership import owner_team
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.identity.principal import Principal


# The longest reason a decision keeps (the API's `reason` fields have the same limit).
REASON_MAX_CHARS = 2000


def decision_action(approve: bool) -> str:
    """The policy table's action of approving or rejecting."""
    return "deploy.approve" if approve else "deploy.reject"


def may_decide(connection: Connection, who: Principal, ref: str, approve: bool) -> Decision:
    """Whether the policy table lets `who` approve (or reject) request `ref`: their role
    for `deploy.approve` / `deploy.reject`, scoped to the team that owns the service (and
    its tenant). The outer gate every face asks first; `Requests.decide` then applies the
    step's rules (`refusal`) and audits.

    Raises:
        RequestError: there is no request `ref`.
    """
    request = lookup.find(connection, ref)
    service = request["service"]
    target = Target(
        team=owner_team(connection, service), tenant=lookup.tenant_of(connection, service)
    )
    return may(who, decision_action(approve), target)


def current_step(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first undecided step, or None when every step is decided."""
    return next((s for s in steps if s["decision"] == "pending"), None)


def refusal(
    connection: Connection, actor: Actor, request: dict[str, Any], steps: list[dict[str, Any]]
) -> str | None:
    """Why `actor` may not decide the current step of `request` (one line), or None."""
    number = request["number"]
    step = current_step(steps)
    if step is None:
        return f"request #{number} has no step left to decide"
    if actor.name == request["requested_by"]:
        return f"{actor.name} made request #{number} and cannot approve or reject it"
    if any(s["decided_by"] == actor.name for s in steps):
        return (
            f"{actor.name} already decided a step of request #{number}; each step needs a "
            "different person"
        )
    if actor.role not in (step["role"], "admin"):
        return (
            f"step {step['position']} of request #{number} needs a {step['role']}; "
            f"{actor.name} is a {actor.role}"
        )
    if step["role"] == TEAM_LEAD:
        try:
            check_team(connection, actor, request, f"step {step['position']} of request #{number}")
        except RequestError as error:
            return str(error)
    return None


def decidable(connection: Connection, actor_name: str, now: dt.datetime) -> list[dict[str, Any]]:
    """The pending, unexpired requests whose current step `actor_name` may decide, oldest
    first, each with its `steps` and its `step` (the current one).

    Raises:
        RequestError: `actor_name` is not a known, enabled user.
    """
    actor = lookup.actor(connection, actor_name)
    query = select(R.__table__).where(R.status == "pending", R.expires_at > now).order_by(R.number)
    found = []
    for request in map(dict, connection.execute(query).mappings()):
        steps = lookup.steps(connection, request["id"])
        if refusal(connection, actor, request, steps) is None:
            found.append(request | {"steps": steps, "step": current_step(steps)})
    return found
