"""POST /api/v1/webhooks/slack/interactions: the Approve / Reject buttons of the approval
message (the Slack app's Interactivity Request URL).

The request is Slack's when its v0 signature matches SLACK_SIGNING_SECRET and its timestamp is
within five minutes; anything else is 401 (audited, at most once a minute per reason). The
click is then recorded once (by the body's digest) and decided by `decide_from_slack`, the
same `Requests.decide` `timbel deploy approve|reject` runs, as the Timbel user whose
`slack_id` is the clicking Slack user. Slack is answered through the payload's
`response_url`: the message without its buttons, saying who decided, or (only to the person
who clicked) why nothing was recorded. A refusal is still HTTP 200 to Slack, which shows no
body of an error answer to its user.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Request, Response
from sqlalchemy.engine import Engine

from timbel_dagster.api import slack_signing
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
from timbel_dagster.deploy.service import requests_from_settings
from timbel_dagster.deploy.slack_decision import (
    ACTIONS,
    SlackClick,
    SlackRefusalError,
    decide_from_slack,
)
from timbel_dagster.notify.errors import PermanentSendError, RetryableSendError
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.warehouse.deliveries import Delivery, receive

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


def _click(body: bytes) -> tuple[SlackClick | None, str | None]:
    """The button click in Slack's form body and its response_url (None: not a click of
    ours). Raises ApiError 400 for a body that is not Slack's form."""
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        user, actions = payload["user"]["id"], payload.get("actions") or []
    except (UnicodeDecodeError, KeyError, IndexError, TypeError, json.JSONDecodeError):
        raise ApiError(400, "not a Slack interaction: no JSON `payload` with a user",
                       kind="bad-request") from None  # fmt: skip
    ours = [a for a in actions if isinstance(a, dict) and a.get("action_id") in ACTIONS]
    if payload.get("type") != "block_actions" or not ours:
        return None, None
    return SlackClick(str(user), ours[0]["action_id"], str(ours[0].get("value", ""))), payload.get(
        "response_url"
    )


def _answer(result: dict[str, Any]) -> dict[str, Any]:
    verb = "rejected" if result["status"] == "rejected" else "approved"
    text = (
        f"Request #{result['number']} ({result['service']} to {result['environment_group']}) "
        f"{verb} by {result['decided_by']} from Slack; it is now {result['status']}."
    )
    return {"replace_original": True, "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}  # fmt: skip


def _tell_slack(response_url: str | None, message: dict[str, Any]) -> None:
    if not response_url:
        return
    try:
        SlackWebhook(response_url).send(message)
    except (ValueError, PermanentSendError, RetryableSendError) as error:
        log.warning("could not answer Slack's response_url: %s", error)


@router.post(
    "/webhooks/slack/interactions",
    summary="Receive a click on an approval message's Approve or Reject button",
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
    """Authenticated by Slack's v0 signature (SLACK_SIGNING_SECRET). A click is recorded
    once; `accepted` means it was decided (or refused, with the reason sent to the clicking
    user through `response_url`); other interactions are `ignored`."""
    settings = request.app.state.settings
    secret = configured(settings.slack_signing_secret, "SLACK_SIGNING_SECRET", "Slack")
    why = slack_signing.check(secret, x_slack_request_timestamp, body, x_slack_signature,
                              time.time())  # fmt: skip
    if why:
        raise refuse(request, warehouse, "slack", why, f"X-Slack-Signature: {why}")
    click, response_url = _click(body)
    if click is None:
        return WebhookAnswer(status="ignored", detail="not an approval button")
    key = body_digest(body)
    subject = f"request #{click.request.lstrip('#')}"
    recorded = {"user": click.slack_user, "action_id": click.action_id, "value": click.request}
    delivery = Delivery("slack", key, click.action_id, subject, recorded, status="taken")
    if not receive(warehouse, delivery):
        response.status_code = 200
        return WebhookAnswer(status="duplicate", delivery_key=key)
    try:
        result = decide_from_slack(requests_from_settings(settings, warehouse), click)
    except SlackRefusalError as error:
        message = {"response_type": "ephemeral", "replace_original": False,
                   "text": f"Not recorded: {error}"}  # fmt: skip
        background.add_task(_tell_slack, response_url, message)
        return WebhookAnswer(status="accepted", delivery_key=key, detail=f"refused: {error}")
    background.add_task(_tell_slack, response_url, _answer(result))
    return WebhookAnswer(status="accepted", delivery_key=key, detail=f"now {result['status']}")
