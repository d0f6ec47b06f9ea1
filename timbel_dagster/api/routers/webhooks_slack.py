"""POST /api/v1/webhooks/slack/interactions: the Approve / Reject buttons of the approval
message and the reason prompt a Reject click answers with (the Slack app's Interactivity
Request URL).

The request is Slack's when its v0 signature matches SLACK_SIGNING_SECRET and its timestamp is
within five minutes; anything else is 401 (audited, at most once a minute per reason). Each
interaction is then recorded once (by the body's digest: a replay changes nothing) and
answered through the payload's `response_url` (HTTP 200 either way: Slack shows its user no
body of an error answer):

- Approve: `decide_from_slack` (the same `Requests.decide` `timbel deploy approve` runs, as
  the Timbel user whose `slack_id` is the clicking Slack user); the message loses its buttons
  and says who decided.
- Reject: nothing is decided yet. A user who may reject gets an ephemeral prompt (only they
  see it) with a text input whose block_id carries the request and the click's delivery
  key; the click's `response_url`, which is the only way to change the channel's message
  without a bot token, is kept with the click's delivery row.
- The reason typed into the prompt (Enter sends it): `decide_from_slack` rejects with it; the
  prompt (this payload's `response_url` is the ephemeral prompt's) becomes the outcome, and
  the channel's message, through the kept `response_url`, loses its buttons and says who
  rejected and why. An empty or too long reason replaces the prompt with itself, saying what
  was wrong.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Request, Response
from sqlalchemy.engine import Engine

from timbel_dagster.api import slack_messages, slack_signing
from timbel_dagster.api.deps import warehouse_engine
from timbel_dagster.api.errors import ApiError, problems
from timbel_dagster.api.webhooks import (
    DUPLICATE,
    TAG,
    WebhookAnswer,
    body_digest,
    configured,
    raw_body,
    refuse,
)
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.deploy.service import requests_from_settings
from timbel_dagster.deploy.slack_decision import (
    ACTIONS,
    REASON,
    REJECT,
    SlackClick,
    SlackReasonError,
    SlackRefusalError,
    decide_from_slack,
    slack_decider,
)
from timbel_dagster.notify.errors import PermanentSendError, RetryableSendError
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.warehouse.deliveries import Delivery, forget_fields, receive, stored_payload

router = APIRouter(tags=[TAG])
log = logging.getLogger(__name__)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"payload": {"type": "string", "description": "JSON."}},
                    "required": ["payload"],
                }
            }
        },
        "description": "Slack's interaction payload (`block_actions`), form-encoded.",
    }
}


@dataclass(frozen=True)
class _Interaction:
    click: SlackClick
    response_url: str | None
    prompt: slack_messages.Prompt | None  # the reason prompt typed into, for REASON


def _typed(action: dict[str, Any], payload: dict[str, Any]) -> str:
    """The text of the prompt's input: the action's `value`, else the message's `state`
    (Slack leaves `value` out, or null, for an empty input)."""
    if isinstance(action.get("value"), str):
        return action["value"]
    typed: Any = payload
    for name in ("state", "values", action.get("block_id"), REASON, "value"):
        typed = typed.get(name) if isinstance(typed, dict) else None
    return typed if isinstance(typed, str) else ""


def _interaction(body: bytes) -> _Interaction | None:
    """The button click or the typed reason in Slack's form body (None: not one of ours).
    Raises ApiError 400 for a body that is not Slack's form."""
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        user, actions = str(payload["user"]["id"]), payload.get("actions") or []
    except (UnicodeDecodeError, KeyError, IndexError, TypeError, json.JSONDecodeError):
        raise ApiError(400, "not a Slack interaction: no JSON `payload` with a user",
                       kind="bad-request") from None  # fmt: skip
    if payload.get("type") != "block_actions" or not isinstance(actions, list):
        return None
    response_url = payload.get("response_url")
    response_url = response_url if isinstance(response_url, str) else None
    for action in (a for a in actions if isinstance(a, dict)):
        if action.get("action_id") in ACTIONS:
            click = SlackClick(user, action["action_id"], str(action.get("value", "")))
            return _Interaction(click, response_url, None)
        prompt = slack_messages.read_block_id(action.get("block_id"))
        if action.get("action_id") == REASON and prompt is not None:
            click = SlackClick(user, REASON, prompt.number, _typed(action, payload))
            return _Interaction(click, response_url, prompt)
    return None


def _tell_slack(response_url: str | None, message: dict[str, Any]) -> None:
    if not response_url:
        return
    try:
        SlackWebhook(response_url).send(message)
    except (ValueError, PermanentSendError, RetryableSendError) as error:
        log.warning("could not answer Slack's response_url: %s", error)


def _recorded(found: _Interaction) -> dict[str, Any]:
    """What the delivery row keeps: who did what to which request; for a Reject click its
    `response_url` too (the reason's answer updates the channel's message through it)."""
    click = found.click
    recorded = {"user": click.slack_user, "action_id": click.action_id, "value": click.request}
    if click.action_id == REJECT:
        recorded["response_url"] = found.response_url
    if found.prompt is not None:
        recorded["prompt"] = found.prompt.click_key
    return recorded


def _channel_url(warehouse: Engine, click: SlackClick, prompt: slack_messages.Prompt) -> str | None:
    """The `response_url` of the Reject click that opened the prompt, when that click was
    this user's, on this request (else None: the channel's message is left as it is)."""
    with warehouse.connect() as connection:
        opened = stored_payload(connection, "slack", prompt.click_key) or {}
    mine = (opened.get("action_id"), opened.get("user"), opened.get("value")) == (
        REJECT, click.slack_user, prompt.number,
    )  # fmt: skip
    url = opened.get("response_url") if mine else None
    if not isinstance(url, str):
        log.warning("no Reject click %s to update the channel's message from",
                    prompt.click_key[:12])  # fmt: skip
        return None
    return url


def _ask_for_reason(
    requests: Requests, found: _Interaction, key: str, background: BackgroundTasks
) -> WebhookAnswer:
    """The Reject button: the prompt for a reason, if the user may reject the request."""
    try:
        slack_decider(requests, found.click)
    except SlackRefusalError as error:
        background.add_task(_tell_slack, found.response_url, slack_messages.refused(str(error)))
        return WebhookAnswer(status="accepted", delivery_key=key, detail=f"refused: {error}")
    prompt = slack_messages.Prompt(found.click.request, 0, key)
    background.add_task(_tell_slack, found.response_url, slack_messages.reason_prompt(prompt))
    return WebhookAnswer(status="accepted", delivery_key=key, detail="asked for a reason")


def _reject_with_reason(
    requests: Requests,
    warehouse: Engine,
    found: _Interaction,
    prompt: slack_messages.Prompt,
    key: str,
    background: BackgroundTasks,
) -> WebhookAnswer:
    """The reason typed into the prompt: reject with it, or ask again."""
    here = found.response_url  # the ephemeral prompt's
    try:
        result = decide_from_slack(requests, found.click)
    except SlackReasonError as error:
        again = slack_messages.Prompt(prompt.number, prompt.attempt + 1, prompt.click_key)
        background.add_task(_tell_slack, here, slack_messages.reason_prompt(again, str(error)))
        return WebhookAnswer(status="accepted", delivery_key=key, detail=f"asked again: {error}")
    except SlackRefusalError as error:
        background.add_task(_tell_slack, here, slack_messages.refused(str(error), replace=True))
        return WebhookAnswer(status="accepted", delivery_key=key, detail=f"refused: {error}")
    channel = _channel_url(warehouse, found.click, prompt)
    with warehouse.begin() as connection:
        forget_fields(connection, "slack", prompt.click_key, "response_url")
    background.add_task(_tell_slack, here, slack_messages.decided_here(result))
    background.add_task(_tell_slack, channel, slack_messages.decided(result))
    return WebhookAnswer(status="accepted", delivery_key=key, detail=f"now {result['status']}")


@router.post(
    "/webhooks/slack/interactions",
    summary="Receive a click on an approval message's Approve or Reject button, or a reason",
    response_model=WebhookAnswer,
    responses=DUPLICATE | problems(400, 401, 404, 422),
    openapi_extra=_BODY,
)
def slack_interactions(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    body: Annotated[bytes, Depends(raw_body)],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    x_slack_signature: Annotated[str | None, Header(description="`v0=<hex HMAC>`.")] = None,
    x_slack_request_timestamp: Annotated[
        str | None, Header(description="Unix seconds; refused when 5 minutes off.")
    ] = None,
) -> WebhookAnswer:
    """Authenticated by Slack's v0 signature (SLACK_SIGNING_SECRET). An interaction is
    recorded once; `accepted` means it was handled through `response_url`: Approve decided
    (or refused, with the reason sent to the clicking user), Reject answered with a prompt
    for the reason that only the clicking user sees, and the reason typed into that prompt
    rejected the request (or asked again when empty or too long); other interactions are
    `ignored`."""
    settings = request.app.state.settings
    secret = configured(settings.slack_signing_secret, "SLACK_SIGNING_SECRET", "Slack")
    why = slack_signing.check(secret, x_slack_request_timestamp, body, x_slack_signature,
                              time.time())  # fmt: skip
    if why:
        raise refuse(request, warehouse, "slack", why, f"X-Slack-Signature: {why}")
    found = _interaction(body)
    if found is None:
        return WebhookAnswer(status="ignored", detail="not an approval button or reason")
    click = found.click
    key = body_digest(body)
    subject = f"request #{click.request.lstrip('#')}"
    delivery = Delivery("slack", key, click.action_id, subject, _recorded(found), status="taken")
    if not receive(warehouse, delivery):
        response.status_code = 200
        return WebhookAnswer(status="duplicate", delivery_key=key)
    requests = requests_from_settings(settings, warehouse)
    if click.action_id == REJECT:
        return _ask_for_reason(requests, found, key, background)
    if found.prompt is not None:
        return _reject_with_reason(requests, warehouse, found, found.prompt, key, background)
    try:
        result = decide_from_slack(requests, click)
    except SlackRefusalError as error:
        background.add_task(_tell_slack, found.response_url, slack_messages.refused(str(error)))
        return WebhookAnswer(status="accepted", delivery_key=key, detail=f"refused: {error}")
    background.add_task(_tell_slack, found.response_url, slack_messages.decided(result))
    return WebhookAnswer(status="accepted", delivery_key=key, detail=f"now {result['status']}")
