"""A decision taken from the approval message on Slack: its Approve button, or its Reject
button and then the reason typed into the prompt that answers the click.

The Slack user is mapped to a Timbel user by `users.slack_id` (the users file's `slack_id`).
That user must pass `deciders.may_decide` (the policy table's `deploy.approve` /
`deploy.reject` with the service's owning team: the gate the approvals page asks too) and
then `Requests.decide`, the function `timbel deploy approve|reject` calls, which checks the
chain's step and the team again and audits the decision or its refusal. An approval is
recorded with the reason "approved from Slack by <user>"; a rejection with the text the user
typed into the prompt, which must say something and keep within `REASON_MAX_CHARS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from timbel_dagster.deploy import lookup
from timbel_dagster.deploy.deciders import REASON_MAX_CHARS, decision_action, may_decide, refusal
from timbel_dagster.deploy.lookup import RequestError
from timbel_dagster.identity.principal import load_principal
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people.users import UserRefusedError
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.deploy.requests import Requests

APPROVE = "timbel_approve"
REJECT = "timbel_reject"
ACTIONS = (APPROVE, REJECT)  # the approval message's buttons
REASON = "timbel_reject_reason"  # the text input of the prompt a Reject click answers with


class SlackRefusalError(ValueError):
    """The decision was not recorded; the message says why, for the Slack user."""


class SlackReasonError(SlackRefusalError):
    """The typed reason is empty or too long; nothing was recorded or audited, the user is
    asked again."""


@dataclass(frozen=True)
class SlackClick:
    slack_user: str  # Slack's user id, U...
    action_id: str  # APPROVE, REJECT or REASON
    request: str  # the request's number (a button's value, or from the prompt's block_id)
    reason: str | None = None  # REASON: the text the user typed

    @property
    def approve(self) -> bool:
        return self.action_id == APPROVE


def timbel_user(connection: Connection, slack_id: str) -> str | None:
    """The Timbel user whose `slack_id` is `slack_id`, if exactly one is."""
    names = connection.execute(select(User.name).where(User.slack_id == slack_id)).scalars().all()
    return names[0] if len(names) == 1 else None


def reason_refusal(text: str | None) -> str | None:
    """Why `text` is not a rejection's reason (one line, for the Slack user), or None."""
    reason = (text or "").strip()
    if not reason:
        return "A rejection needs a reason: type why, then press Enter."
    if len(reason) > REASON_MAX_CHARS:
        return (
            f"The reason has {len(reason)} characters; at most {REASON_MAX_CHARS} are kept: "
            "shorten it, then press Enter."
        )
    return None


def _refused(requests: Requests, actor: str, action: str, target: str, why: str) -> None:
    with requests.engine.begin() as connection:
        append_event(
            connection,
            actor=actor,
            action=f"{action}.refused",
            target=target,
            details={"error": why, "via": "slack"},
        )


def _not_rejectable(connection: Connection, name: str, ref: str) -> str | None:
    """Why `name` cannot reject request `ref` now (its status, the step's rules), or None."""
    request = lookup.find(connection, ref)
    if request["status"] != "pending":
        return f"request #{request['number']} is {request['status']}"
    steps = lookup.steps(connection, request["id"])
    return refusal(connection, lookup.actor(connection, name), request, steps)


def slack_decider(requests: Requests, click: SlackClick) -> str:
    """The Timbel user who may take the click's decision. For the Reject button (before the
    prompt for a reason is shown) the request's status and the step's rules are checked
    too, so that someone who cannot reject is told now rather than after typing a reason.

    Raises:
        SlackRefusalError: the Slack user is not linked to one Timbel user, or that user may
            not decide this request (audited as `deploy.<approve|reject>.refused`, with the
            user where known).
    """
    action = decision_action(click.approve)
    target = f"request {click.request}"
    with requests.engine.connect() as connection:
        name = timbel_user(connection, click.slack_user)
        if name is None:
            why = (f"Slack user {click.slack_user} is not linked to one Timbel user: set "
                   "their slack_id in the users file")  # fmt: skip
            actor = f"slack:{click.slack_user}"
        else:
            actor = name
            try:
                who = load_principal(connection, name, via="slack")
                verdict = may_decide(connection, who, click.request, click.approve)
                why = None if verdict.allowed else verdict.reason
                if why is None and click.action_id == REJECT:
                    why = _not_rejectable(connection, name, click.request)
            except (UserRefusedError, RequestError) as error:
                why = str(error)
    if why is not None:
        _refused(requests, actor, action, target, why)
        raise SlackRefusalError(why)
    return name


def decide_from_slack(requests: Requests, click: SlackClick) -> dict[str, Any]:
    """Record the decision of an Approve click or of a reason typed into the prompt, as the
    click's Timbel user; returns the request as `decide` does, with `decided_by` and
    `reason`.

    Raises:
        SlackReasonError: a rejection whose reason is empty or too long (nothing recorded).
        SlackRefusalError: `slack_decider` or `decide` refused (audited).
    """
    if click.action_id == REJECT:
        raise ValueError("the Reject button decides nothing: its prompt's reason does")
    name = slack_decider(requests, click)
    if click.approve:
        reason = f"approved from Slack by {name}"
    else:
        problem = reason_refusal(click.reason)
        if problem:
            raise SlackReasonError(problem)
        reason = (click.reason or "").strip()
    try:
        result = requests.decide(name, click.request, click.approve, reason)
    except RequestError as error:  # audited by decide
        raise SlackRefusalError(str(error)) from None
    return result | {"decided_by": name, "reason": reason}
