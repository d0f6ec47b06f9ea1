"""A decision taken with the Approve / Reject buttons of the approval message on Slack.

The Slack user is mapped to a Timbel user by `users.slack_id` (the users file's `slack_id`);
that user's role and team are checked by the policy table (`deploy.approve` /
`deploy.reject` with the service's owning team) and then by `Requests.decide`, the function
`timbel deploy approve|reject` calls, which checks the chain's step and the team again and
audits the decision or its refusal. Rejecting needs a reason and a button carries none, so
the reason recorded is "rejected from Slack by <user>"; a reasoned rejection is made with
`timbel deploy reject` or the approvals page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from timbel_dagster.deploy.lookup import RequestError
from timbel_dagster.identity.authorize import Target, may
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.people.users import UserRefusedError
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.deploy.requests import Requests

APPROVE = "timbel_approve"
REJECT = "timbel_reject"
ACTIONS = (APPROVE, REJECT)


class SlackRefusalError(ValueError):
    """The decision was not recorded; the message says why, for the Slack user."""


@dataclass(frozen=True)
class SlackClick:
    slack_user: str  # Slack's user id, U...
    action_id: str  # APPROVE or REJECT
    request: str  # the button's value: the request's number

    @property
    def approve(self) -> bool:
        return self.action_id == APPROVE


def timbel_user(connection: Connection, slack_id: str) -> str | None:
    """The Timbel user whose `slack_id` is `slack_id`, if exactly one is."""
    names = connection.execute(select(User.name).where(User.slack_id == slack_id)).scalars().all()
    return names[0] if len(names) == 1 else None


def _refused(requests: Requests, actor: str, action: str, target: str, why: str) -> None:
    with requests.engine.begin() as connection:
        append_event(
            connection,
            actor=actor,
            action=f"{action}.refused",
            target=target,
            details={"error": why, "via": "slack"},
        )


def decide_from_slack(requests: Requests, click: SlackClick) -> dict[str, Any]:
    """Record the click's decision as its Timbel user; returns the request as `decide` does,
    with `decided_by`.

    Raises:
        SlackRefusalError: the Slack user is not mapped, the user may not decide this request
            or `decide` refused (every refusal is audited, with the user where known).
    """
    action = "deploy.approve" if click.approve else "deploy.reject"
    target = f"request {click.request}"
    with requests.engine.connect() as connection:
        name = timbel_user(connection, click.slack_user)
        if name is None:
            why = (f"Slack user {click.slack_user} is not linked to one Timbel user: set "
                   "their slack_id in the users file")  # fmt: skip
            actor = f"slack:{click.slack_user}"
        else:
            actor, why = name, None
            try:
                who = load_principal(connection, name, via="slack")
                request = requests.find(connection, click.request)
                team = membership.owner_team(connection, request["service"])
                decision = may(who, action, Target(team=team))
                why = None if decision.allowed else decision.reason
            except (UserRefusedError, RequestError) as error:
                why = str(error)
    if why is not None:
        _refused(requests, actor, action, target, why)
        raise SlackRefusalError(why)
    reason = f"{'approved' if click.approve else 'rejected'} from Slack by {name}"
    try:
        result = requests.decide(name, click.request, click.approve, reason)
    except RequestError as error:  # audited by decide
        raise SlackRefusalError(str(error)) from None
    return result | {"decided_by": name}
