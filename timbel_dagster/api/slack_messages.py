"""The messages `/webhooks/slack/interactions` posts to a payload's `response_url`.

Slack's rules they follow (Block Kit and "Handling user interaction" in Slack's docs): a
`response_url` accepts a message that replaces the one clicked (`replace_original: true`,
ephemeral or not) or a new one (`replace_original: false`), which `response_type:
ephemeral` shows only to the user who clicked. A message may hold an `input` block only with
`dispatch_action: true`; its `plain_text_input` then sends a `block_actions` payload whose
action carries the `block_id`, the `action_id` and the typed `value` when the user presses
Enter (`dispatch_action_config.trigger_actions_on: ["on_enter_pressed"]`). A `block_id` is
at most 255 characters and should change with each version of a message. Text in `mrkdwn`
is escaped (`&`, `<`, `>`), so a reason cannot ping `<!channel>` or forge a link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from timbel_dagster.deploy.deciders import REASON_MAX_CHARS
from timbel_dagster.deploy.slack_decision import REASON
from timbel_dagster.notify.templates import mrkdwn

# The prompt's block_id: REASON:<request number>:<attempt>:<the Reject click's delivery key,
# the digest of its body>; at most 120 characters.
_BLOCK_ID = re.compile(rf"^{REASON}:(\d{{1,18}}):(\d{{1,3}}):(sha256:[0-9a-f]{{64}})$")


@dataclass(frozen=True)
class Prompt:
    """What the prompt's block_id carries back with the typed reason."""

    number: str  # the request's number
    attempt: int  # 0 for the first prompt, +1 each time it asks again
    click_key: str  # the delivery key of the Reject click that opened it

    @property
    def block_id(self) -> str:
        return f"{REASON}:{self.number}:{self.attempt}:{self.click_key}"


def read_block_id(block_id: object) -> Prompt | None:
    """The prompt a `block_id` names, or None when it is not one of ours."""
    found = _BLOCK_ID.match(block_id) if isinstance(block_id, str) else None
    return Prompt(found[1], int(found[2]), found[3]) if found else None


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def reason_prompt(prompt: Prompt, problem: str | None = None) -> dict[str, Any]:
    """Ask the user who clicked Reject why: a new ephemeral message with one text input (the
    first time), or the same prompt replacing itself with `problem` above it."""
    question = f"Why do you reject request #{prompt.number}?"
    element = {
        "type": "plain_text_input",
        "action_id": REASON,
        "max_length": REASON_MAX_CHARS,
        "placeholder": {
            "type": "plain_text",
            "text": "e.g. no rollback plan for the schema change",
        },
        "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
    }
    blocks: list[dict[str, Any]] = [_section(f":warning: {mrkdwn(problem)}")] if problem else []
    blocks.append(
        {
            "type": "input",
            "block_id": prompt.block_id,
            "dispatch_action": True,
            "label": {"type": "plain_text", "text": question},
            "element": element,
        }
    )
    text = f"{problem} {question}" if problem else f"{question} Type the reason, then press Enter."
    if problem:
        return {"replace_original": True, "text": text, "blocks": blocks}
    return {"response_type": "ephemeral", "replace_original": False, "text": text,
            "blocks": blocks}  # fmt: skip


def refused(why: str, *, replace: bool = False) -> dict[str, Any]:
    """Why nothing was recorded, for the user who clicked only: a new ephemeral message, or
    (`replace`) in place of the prompt they typed into."""
    text = f"Not recorded: {why}"
    if replace:
        return {"replace_original": True, "text": text, "blocks": [_section(mrkdwn(text))]}
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def decided(result: dict[str, Any]) -> dict[str, Any]:
    """The approval message again, without its buttons: who decided, why (a rejection's
    reason), and the request's new status."""
    verb = "rejected" if result["status"] == "rejected" else "approved"
    text = (
        f"Request #{result['number']} ({result['service']} to {result['environment_group']}) "
        f"{verb} by {result['decided_by']} from Slack; it is now {result['status']}."
    )
    if verb == "rejected":
        text += f"\nReason: {mrkdwn(result['reason'])}"
    return {"replace_original": True, "text": text, "blocks": [_section(text)]}


def decided_here(result: dict[str, Any]) -> dict[str, Any]:
    """What replaces the prompt once the reason was recorded (only its user sees it)."""
    text = f"You rejected request #{result['number']}: {mrkdwn(result['reason'])}"
    return {"replace_original": True, "text": text, "blocks": [_section(text)]}
