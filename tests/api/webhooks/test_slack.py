"""POST /webhooks/slack/interactions: a click on Approve / Reject is decided by
`Requests.decide` as the Timbel user linked to the Slack user, with their role and team
checked; Slack gets the message without its buttons, or the reason only the clicker sees."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from tests.api.conftest import audit_events
from tests.api.webhooks.conftest import SECRETS, deliveries
from tests.api.webhooks.slack import URL, click_body, pending_request, signed
from timbel_dagster.api import slack_signing
from timbel_dagster.deploy.slack_decision import APPROVE, REJECT
from timbel_dagster.warehouse.schema.deploy import ApprovalStep, DeploymentRequest

SECRET = SECRETS["slack_signing_secret"]


@pytest.fixture
def number(engine, warehouse_url: str) -> int:
    return pending_request(warehouse_url)


@pytest.fixture
def slack(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/actions/T0/1", method="POST").respond_with_data("ok")
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


def said(slack: HTTPServer) -> list[dict]:
    return [json.loads(request.data) for request, _ in slack.log]


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


def test_reject_records_the_documented_reason(hooked, engine, slack, number) -> None:
    assert click(hooked, slack, "ULEAD", REJECT, number).status_code == 200
    assert state(engine, number) == (
        "rejected", [("rejected", "lead", "rejected from Slack by lead")]
    )  # fmt: skip
    assert "rejected by lead" in said(slack)[0]["text"]


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


def test_a_second_click_on_a_decided_request_is_refused_by_decide(
    hooked, engine, slack, number
) -> None:
    click(hooked, slack, "ULEAD", APPROVE, number)
    response = click(hooked, slack, "UOPS", REJECT, number, nonce="2")
    assert "refused" in response.json()["detail"]
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
