"""What is notified: one `Message` per event instance, and the people it can go to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from timbel_dagster.warehouse.schema.notify import SEVERITIES

EVENTS = (
    "pipeline_done",
    "pipeline_failed",
    "deployment_done",
    "alert_fired",
    "alert_resolved",
    "issue_created",
    "run_failed",
    "approval_requested",
)


def event_family(event: str) -> str:
    """The family a subscription may name instead of one event: `alert_fired` -> `alert`."""
    return event.split("_", 1)[0]


# What a subscription's `event` may be: one event, a family of events, or every event.
SUBSCRIBABLE_EVENTS = ("*", *dict.fromkeys(event_family(e) for e in EVENTS), *EVENTS)


def severity_rank(severity: str) -> int:
    """0 for the most severe; a smaller rank is at least as severe as a larger one."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Message:
    """One event instance to notify about.

    Attributes:
        event: what happened, one of `EVENTS`.
        key: identifies this event instance (e.g. `alert:<fingerprint>:fired:<iso time>`);
            the same key is never notified twice to the same recipient on the same channel.
        title: one line shown as the Slack header and in the e-mail subject.
        severity: one of `SEVERITIES` (critical, high, warning, info).
        context: details shown as fields (label -> value) and available to templates.
        mentions: user names to mention on Slack besides the subscribers.
        url: where the reader can act on it (a button in Slack, a link in e-mail).
    """

    event: str
    key: str
    title: str
    severity: str = "info"
    context: dict[str, Any] = field(default_factory=dict)
    mentions: tuple[str, ...] = ()
    url: str | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(
                f"unknown notification event {self.event!r}; valid: {', '.join(EVENTS)}"
            )
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; valid: {', '.join(SEVERITIES)}")
        if not self.key.strip():
            raise ValueError(f"{self.event} message has an empty key; it is needed to de-duplicate")
        if not self.title.strip():
            raise ValueError(f"{self.event} message {self.key!r} has an empty title")
        # A list given for mentions would make the frozen message unhashable and mutable.
        object.__setattr__(self, "mentions", tuple(self.mentions))


@dataclass(frozen=True)
class Recipient:
    """A user a notification goes to, as read from the `users` table."""

    name: str
    display_name: str | None = None
    email: str | None = None
    slack_id: str | None = None

    @property
    def slack_mention(self) -> str:
        """`<@SLACKID>` notifies the user; without a Slack id, `@name` at least names them."""
        return f"<@{self.slack_id}>" if self.slack_id else f"@{self.name}"
