"""A pending deployment request for shop-api, people linked to Slack users, and signed
Slack interaction bodies, for the Slack webhook tests."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import urlencode

from sqlalchemy import update

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


def click_body(user: str, action: str, number: int, response_url: str, nonce: str = "1") -> bytes:
    """Slack's form body for a click on a button of the approval message."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0"},
        "team": {"id": "T0", "domain": "example"},
        "api_app_id": "A0",
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "trigger_id": f"1337.42.{nonce}",
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action, "block_id": "b",
                     "value": str(number), "action_ts": f"1700000001.{nonce}"}],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(secret: str, body: bytes, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(secret, timestamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
