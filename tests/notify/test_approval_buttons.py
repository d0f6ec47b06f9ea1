"""The approval message on Slack carries Approve / Reject buttons whose value is the request
number (what /webhooks/slack/interactions reads); a fast-track notice has none."""

from __future__ import annotations

from timbel_dagster.deploy.slack_decision import ACTIONS
from timbel_dagster.notify.messages import Message
from timbel_dagster.notify.templates import Templates


def _actions(title: str, url: str | None = "https://timbel.example/approvals") -> list[dict]:
    message = Message(event="approval_requested", key="k", title=title,
                      context={"request": "#12", "service": "shop-api"}, url=url)  # fmt: skip
    blocks = Templates().slack(message)["blocks"]
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_approval_message_has_approve_and_reject_buttons_for_the_request() -> None:
    elements = _actions("Approve deployment #12: shop-api to prod")
    buttons = [e for e in elements if e.get("action_id") in ACTIONS]
    assert [(b["action_id"], b["value"], b["style"]) for b in buttons] == [
        ("timbel_approve", "12", "primary"),
        ("timbel_reject", "12", "danger"),
    ]
    assert elements[-1]["url"] == "https://timbel.example/approvals"


def test_buttons_without_a_public_url() -> None:
    assert [e["action_id"] for e in _actions("Approve deployment #12", url=None)] == list(ACTIONS)


def test_a_fast_tracked_notice_has_no_decision_buttons() -> None:
    elements = _actions("FAST-TRACKED: shop-api to prod (incident INC-1); review it after")
    assert not [e for e in elements if e.get("action_id") in ACTIONS]
