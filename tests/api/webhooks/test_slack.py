"""POST /webhooks/slack/interactions: a click on Approve is decided by `Requests.decide` as
the Timbel user linked to the Slack user, with their role and team checked; a click on Reject
is answered with an ephemeral prompt for the reason, and the reason typed into it rejects.
Slack gets the message without its buttons, or the reason only the clicker sees."""

from __future__ import annotations

import json
import time

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from tests.api.conftest import audit_events
from tests.api.webhooks.conftest import SECRETS, deliveries
from tests.api.webhooks.slack import URL, click_body, pending_request, reason_body, signed
from timbel_dagster.api import slack_messages, slack_signing
from timbel_dagster.deploy.deciders import REASON_MAX_CHARS
from timbel_dagster.deploy.slack_decision import APPROVE, REASON, REJECT
from timbel_dagster.warehouse.deliveries import stored_payload
from timbel_dagster.warehouse.schema.deploy import ApprovalStep, DeploymentRequest

SECRET = SECRETS["slack_signing_secret"]
CHANNEL = "/actions/T0/1"  # the response_url of a click on the channel's approval message
PROMPT = "/actions/T0/2"  # the response_url of the ephemeral prompt's interaction


@pytest.fixture
def number(engine, warehouse_url: str) -> int:
    return pending_request(warehouse_url)


@pytest.fixture
def slack(httpserver: HTTPServer) -> HTTPServer:
    for path in (CHANNEL, PROMPT):
        httpserver.expect_request(path, method="POST").respond_with_data("ok")
    return httpserver


def state(engine, number: int) -> tuple[str, list[tuple]]:
    with engine.connect() as connection:
        request = connection.execute(
            select(DeploymentRequest.id, DeploymentRequest.status).where(
                DeploymentRequest.number == number
            )
        ).one()
        steps = connection.execute(
            select(ApprovalStep.decision, ApprovalStep.decided_by, ApprovalStep.reason).where(
                ApprovalStep.request_id == request.id
            )
        ).all()
    return request.status, [tuple(s) for s in steps]


def click(hooked, slack, user: str, action: str, number: int, nonce: str = "1"):
    body = click_body(user, action, number, slack.url_for("/actions/T0/1"), nonce)
    return hooked.post(URL, content=body, headers=signed(SECRET, body))


def said(slack: HTTPServer, path: str | None = None) -> list[dict]:
    """What was posted to the fake response_urls (to `path` only, if given), in order."""
    return [json.loads(r.data) for r, _ in slack.log if path is None or r.path == path]


def input_block(message: dict) -> dict:
    [block] = [b for b in message["blocks"] if b["type"] == "input"]
    return block


def type_reason(hooked, slack, user: str, block_id: str, reason: str | None, nonce: str = "1"):
    body = reason_body(user, block_id, reason, slack.url_for(PROMPT), nonce)
    return hooked.post(URL, content=body, headers=signed(SECRET, body))


def reject_click(hooked, slack, number: int, user: str = "ULEAD") -> str:
    """Click Reject; the block_id of the prompt Slack was sent."""
    assert click(hooked, slack, user, REJECT, number).json()["detail"] == "asked for a reason"
    return input_block(said(slack, CHANNEL)[-1])["block_id"]


def test_the_team_lead_approves_from_slack(hooked, engine, slack, number) -> None:
    response = click(hooked, slack, "ULEAD", APPROVE, number)
    assert response.status_code == 200, response.text
    assert response.json()["detail"] == "now approved"
    assert state(engine, number) == (
        "approved", [("approved", "lead", "approved from Slack by lead")]
    )  # fmt: skip
    [(actor, target, details)] = audit_events(engine, "deploy.approve")
    assert (actor, target, details["reason"]) == ("lead", f"request #{number}",
                                                  "approved from Slack by lead")  # fmt: skip
    [answer] = said(slack)
    assert answer["replace_original"] is True
    assert f"Request #{number}" in answer["text"] and "approved by lead" in answer["text"]
    assert "actions" not in json.dumps(answer["blocks"])  # the buttons are gone


def test_reject_asks_for_a_reason_only_the_clicker_sees(hooked, engine, slack, number) -> None:
    response = click(hooked, slack, "ULEAD", REJECT, number)
    assert response.json() == {"status": "accepted", "delivery_key": response.json()[
        "delivery_key"], "detail": "asked for a reason"}  # fmt: skip
    assert state(engine, number) == ("pending", [("pending", None, None)])
    assert audit_events(engine, "deploy.reject") == []
    [prompt] = said(slack, CHANNEL)
    assert prompt["response_type"] == "ephemeral" and prompt["replace_original"] is False
    block = input_block(prompt)
    assert block["dispatch_action"] is True
    assert block["label"] == {"type": "plain_text", "text": f"Why do you reject request #{number}?"}
    assert block["block_id"].startswith(f"{REASON}:{number}:0:") and len(block["block_id"]) <= 255
    element = block["element"]
    assert (element["type"], element["action_id"], element["max_length"]) == (
        "plain_text_input", REASON, REASON_MAX_CHARS,
    )  # fmt: skip
    assert element["dispatch_action_config"] == {"trigger_actions_on": ["on_enter_pressed"]}


def test_the_typed_reason_rejects_and_updates_the_channel_message(
    hooked, engine, slack, number
) -> None:
    block_id = reject_click(hooked, slack, number)
    response = type_reason(hooked, slack, "ULEAD", block_id, "  no rollback plan <!channel> ")
    assert response.json()["detail"] == "now rejected"
    assert state(engine, number) == (
        "rejected", [("rejected", "lead", "no rollback plan <!channel>")]
    )  # fmt: skip
    [(actor, target, details)] = audit_events(engine, "deploy.reject")
    assert (actor, target, details["reason"]) == ("lead", f"request #{number}",
                                                  "no rollback plan <!channel>")  # fmt: skip
    [here] = said(slack, PROMPT)  # the ephemeral prompt becomes the outcome
    assert here["replace_original"] is True and "input" not in json.dumps(here["blocks"])
    assert here["text"] == f"You rejected request #{number}: no rollback plan &lt;!channel&gt;"
    _prompt, channel = said(slack, CHANNEL)  # the approval message, through the kept URL
    assert channel["replace_original"] is True
    assert "rejected by lead" in channel["text"]
    assert "Reason: no rollback plan &lt;!channel&gt;" in channel["text"]
    assert "actions" not in json.dumps(channel["blocks"])  # the buttons are gone
    with engine.connect() as connection:  # the channel's URL is not kept once used
        opened = stored_payload(connection, "slack", block_id.split(":", 3)[3])
    assert opened is not None and "response_url" not in opened


@pytest.mark.parametrize(
    ("reason", "why"),
    [
        (None, "needs a reason"),
        ("", "needs a reason"),
        ("   \t ", "needs a reason"),
        ("x" * (REASON_MAX_CHARS + 1), f"at most {REASON_MAX_CHARS} are kept"),
    ],
)
def test_an_empty_or_too_long_reason_asks_again_and_decides_nothing(
    hooked, engine, slack, number, reason: str | None, why: str
) -> None:
    block_id = reject_click(hooked, slack, number)
    response = type_reason(hooked, slack, "ULEAD", block_id, reason)
    assert response.json()["detail"].startswith("asked again") and why in response.json()["detail"]
    assert state(engine, number) == ("pending", [("pending", None, None)])
    assert audit_events(engine, "deploy.reject") == []
    assert audit_events(engine, "deploy.reject.refused") == []
    [again] = said(slack, PROMPT)  # the prompt replaces itself, saying what was wrong
    assert again["replace_original"] is True and why in again["text"]
    retry = input_block(again)["block_id"]
    assert retry != block_id and retry.startswith(f"{REASON}:{number}:1:")
    assert len(said(slack, CHANNEL)) == 1  # only the first prompt: the message is unchanged
    # The prompt asked again still works.
    assert type_reason(hooked, slack, "ULEAD", retry, "tests are red", nonce="2").json()[
        "detail"
    ] == "now rejected"  # fmt: skip
    assert state(engine, number)[1] == [("rejected", "lead", "tests are red")]


def test_a_replayed_reason_rejects_once(hooked, engine, slack, number) -> None:
    block_id = reject_click(hooked, slack, number)
    body = reason_body("ULEAD", block_id, "no rollback plan", slack.url_for(PROMPT))
    headers = signed(SECRET, body)
    first, again = (hooked.post(URL, content=body, headers=headers) for _ in range(2))
    assert first.json()["detail"] == "now rejected"
    assert again.json()["status"] == "duplicate"
    assert len(audit_events(engine, "deploy.reject")) == 1
    assert len(said(slack, PROMPT)) == 1 and len(said(slack, CHANNEL)) == 2


def test_a_second_reason_for_a_rejected_request_is_refused(hooked, engine, slack, number) -> None:
    block_id = reject_click(hooked, slack, number)
    type_reason(hooked, slack, "ULEAD", block_id, "no rollback plan")
    response = type_reason(hooked, slack, "ULEAD", block_id, "and the tests are red", nonce="2")
    assert response.json()["detail"].startswith("refused:")
    assert state(engine, number)[1] == [("rejected", "lead", "no rollback plan")]
    assert len(audit_events(engine, "deploy.reject.refused")) == 1
    _outcome, refused = said(slack, PROMPT)
    assert refused["replace_original"] is True and refused["text"].startswith("Not recorded")
    assert len(said(slack, CHANNEL)) == 2  # the channel message was updated once


@pytest.mark.parametrize(("at", "signature_of"), [(-301, SECRET), (0, "not-the-secret")])
def test_the_reason_payload_is_checked_like_a_click(
    hooked, engine, slack, number, at: int, signature_of: str
) -> None:
    block_id = reject_click(hooked, slack, number)
    body = reason_body("ULEAD", block_id, "no rollback plan", slack.url_for(PROMPT))
    response = hooked.post(URL, content=body, headers=signed(signature_of, body, time.time() + at))
    assert response.status_code == 401
    assert state(engine, number)[0] == "pending" and said(slack, PROMPT) == []
    assert len(deliveries(engine, "slack")) == 1  # the Reject click only


def test_a_developer_cannot_reject_from_slack(hooked, engine, slack, number) -> None:
    response = click(hooked, slack, "UDEV", REJECT, number)
    assert "dev (developer) is not one" in response.json()["detail"]
    [answer] = said(slack, CHANNEL)  # told why, and not asked for a reason
    assert answer["response_type"] == "ephemeral" and "blocks" not in answer
    assert "dev (developer) is not one" in answer["text"]
    [(actor, _target, details)] = audit_events(engine, "deploy.reject.refused")
    assert actor == "dev" and details["via"] == "slack"
    # A reason sent as the developer (with the lead's prompt) is refused the same way.
    block_id = reject_click(hooked, slack, number)
    response = type_reason(hooked, slack, "UDEV", block_id, "I do not like it")
    assert "dev (developer) is not one" in response.json()["detail"]
    assert state(engine, number) == ("pending", [("pending", None, None)])
    assert len(audit_events(engine, "deploy.reject.refused")) == 2
    assert len(said(slack, CHANNEL)) == 2  # the refusal and the lead's prompt, nothing more


@pytest.mark.parametrize(
    ("slack_user", "actor", "why"),
    [
        ("UNOBODY", "slack:UNOBODY", "not linked"),
        ("UDEV", "dev", "dev (developer) is not one"),
        ("ULEAD2", "lead2", "needs a member of team shop"),
    ],
)
def test_a_refused_click_changes_nothing_and_is_audited(
    hooked, engine, slack, number, slack_user: str, actor: str, why: str
) -> None:
    response = click(hooked, slack, slack_user, APPROVE, number)
    assert response.status_code == 200
    assert why in response.json()["detail"]
    assert state(engine, number) == ("pending", [("pending", None, None)])
    assert audit_events(engine, "deploy.approve") == []
    [(refused_actor, _target, details)] = audit_events(engine, "deploy.approve.refused")
    assert refused_actor == actor and why in details["error"]
    [answer] = said(slack)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert why in answer["text"]


def test_a_replayed_click_is_decided_once(hooked, engine, slack, number) -> None:
    body = click_body("ULEAD", APPROVE, number, slack.url_for("/actions/T0/1"))
    headers = signed(SECRET, body)
    first, again = (hooked.post(URL, content=body, headers=headers) for _ in range(2))
    assert first.json()["status"] == "accepted"
    assert again.json()["status"] == "duplicate"
    assert len(audit_events(engine, "deploy.approve")) == 1
    assert len(deliveries(engine, "slack")) == 1 and len(said(slack)) == 1


def test_a_reject_click_on_a_decided_request_is_refused_at_once(
    hooked, engine, slack, number
) -> None:
    click(hooked, slack, "ULEAD", APPROVE, number)
    response = click(hooked, slack, "UOPS", REJECT, number, nonce="2")
    assert response.json()["detail"] == f"refused: request #{number} is approved"
    assert state(engine, number)[0] == "approved"
    assert len(audit_events(engine, "deploy.reject.refused")) == 1


def test_other_interactions_are_ignored(hooked, engine, slack, number) -> None:
    body = click_body("ULEAD", "something_else", number, slack.url_for("/actions/T0/1"))
    response = hooked.post(URL, content=body, headers=signed(SECRET, body))
    assert response.json()["status"] == "ignored"
    assert state(engine, number)[0] == "pending" and deliveries(engine, "slack") == []


@pytest.mark.parametrize(
    ("sent", "given", "why"),
    [
        (1_000_000, "ok", ""),
        (1_000_000 - 299, "ok", ""),
        (1_000_000 + 299, "ok", ""),
        (1_000_000 - 301, "ok", "stale"),
        (1_000_000 + 301, "ok", "stale"),
        (1_000_000, "v0=" + "0" * 64, "wrong"),
        (1_000_000, None, "missing"),
    ],
)
def test_signature_check(sent: int, given: str | None, why: str) -> None:
    body = b"payload=%7B%7D"
    signature = slack_signing.signature(SECRET, str(sent), body) if given == "ok" else given
    assert slack_signing.check(SECRET, str(sent), body, signature, now=1_000_000.0) == why


KEY = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("block_id", "read"),
    [
        (f"{REASON}:12:0:{KEY}", ("12", 0, KEY)),
        (f"{REASON}:12:3:{KEY}", ("12", 3, KEY)),
        (f"{REASON}:12:0:sha256:abc", None),
        (f"{REASON}:#12:0:{KEY}", None),
        (f"other:12:0:{KEY}", None),
        ("kWl1", None),
        (None, None),
        (["not", "a", "string"], None),
    ],
)
def test_the_prompt_block_id(block_id, read) -> None:
    prompt = slack_messages.read_block_id(block_id)
    assert (prompt and (prompt.number, prompt.attempt, prompt.click_key)) == read
    if prompt is not None:
        assert prompt.block_id == block_id and len(block_id) <= 255


def test_a_reason_from_a_prompt_that_is_not_ours_is_ignored(hooked, engine, slack, number) -> None:
    body = reason_body("ULEAD", "kWl1", "no rollback plan", slack.url_for(PROMPT))
    response = hooked.post(URL, content=body, headers=signed(SECRET, body))
    assert response.json()["status"] == "ignored"
    assert state(engine, number)[0] == "pending" and deliveries(engine, "slack") == []
