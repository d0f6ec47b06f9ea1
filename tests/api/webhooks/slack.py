"""A pending deployment request for shop-api, people linked to Slack users, and signed
Slack interaction bodies (the recorded shapes in tests/fixtures/slack, with our values), for
the Slack webhook tests."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from urllib.parse import urlencode

from sqlalchemy import update

from tests.api.webhooks.conftest import fixture
from tests.deploy.known import know, own
from tests.identity.people import PEOPLE, store_people
from tests.security.findings import ALPINE_DIGEST, CLEAN, store
from timbel_dagster.api.slack_signing import signature
from timbel_dagster.deploy.chains import load_chains
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import User

URL = "/api/v1/webhooks/slack/interactions"
IMAGE = "registry.example.com/shop/api:1.4.2"
# lead2 leads another team: the team check refuses them for shop-api.
SLACK_IDS = {"lead": "ULEAD", "dev": "UDEV", "ops": "UOPS", "lead2": "ULEAD2"}


def pending_request(url: str) -> int:
    """Request #N to deploy shop-api to staging (one step: a team lead of shop); its number."""
    store_people(url, [*PEOPLE, ("lead2", "team_lead", "web")])
    engine = get_engine(url)
    with engine.begin() as connection:
        for name, slack_id in SLACK_IDS.items():
            connection.execute(update(User).where(User.name == name).values(slack_id=slack_id))
    know(url, "shop-api", {IMAGE: ALPINE_DIGEST})
    own(url, "shop-api", "shop", ["lead", "dev"])
    own(url, "web-app", "web", ["lead2"])
    store(url, CLEAN, IMAGE)
    requests = Requests(engine, load_chains(None), dt.timedelta(hours=72))
    return requests.request("dev", "shop-api", IMAGE, "staging", "release 1.4.2")["number"]


BUTTON = fixture("slack", "block_actions_button.json")
TYPED = fixture("slack", "block_actions_plain_text_input.json")


def _body(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def _user(payload: dict, user: str) -> None:
    payload["user"] |= {"id": user, "username": user.lower(), "name": user.lower()}


def click_body(user: str, action: str, number: int, response_url: str, nonce: str = "1") -> bytes:
    """Slack's form body for a click on a button of the approval message."""
    payload = copy.deepcopy(BUTTON)
    _user(payload, user)
    payload["response_url"] = response_url
    payload["trigger_id"] = f"1337.42.{nonce}"
    payload["actions"][0] |= {"action_id": action, "value": str(number),
                              "action_ts": f"1764928861.{nonce}"}  # fmt: skip
    return _body(payload)


def reason_body(
    user: str, block_id: str, reason: str | None, response_url: str, nonce: str = "1"
) -> bytes:
    """Slack's form body for a reason typed into the prompt and sent with Enter (`reason`
    None: the action without a `value`, as Slack sends an empty input)."""
    payload = copy.deepcopy(TYPED)
    _user(payload, user)
    payload["response_url"] = response_url
    payload["trigger_id"] = f"1337.43.{nonce}"
    typed = {"type": "plain_text_input", "value": reason}
    payload["state"] = {"values": {block_id: {"timbel_reject_reason": typed}}}
    action = payload["actions"][0] | {"block_id": block_id, "action_ts": f"1764928905.{nonce}"}
    if reason is None:
        del action["value"]
    else:
        action["value"] = reason
    payload["actions"] = [action]
    return _body(payload)


def signed(secret: str, body: bytes, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(secret, timestamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
