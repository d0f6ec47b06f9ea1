"""Turning a message into deliveries: one per channel and recipient, rendered and ready to
be recorded as a `notifications` row."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from timbel_dagster.notify.email import SmtpSender
from timbel_dagster.notify.messages import Message, Recipient
from timbel_dagster.notify.records import LEASE, dedupe_key
from timbel_dagster.notify.templates import Templates
from timbel_dagster.warehouse.schema.ids import stable_id

SLACK_RECIPIENT = "webhook"
ERROR_LIMIT = 2000
_SUBJECT_LIMIT = 512  # the column's length
_RECIPIENT_LIMIT = 320


@dataclass
class Delivery:
    """One notification to record and, while `pending`, to send.

    `status` is `failed` when it did not render and `skipped` when there is no address or
    the user is disabled; `error` then says why.
    """

    id: uuid.UUID
    dedupe_key: str
    channel: str
    recipient: str  # what the row shows: the webhook, or the e-mail address
    subject: str
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    error: str | None = None

    def row(self, event: str, now: dt.datetime) -> dict[str, Any]:
        """The `notifications` row; a pending one claims its first attempt (see `records`)."""
        pending = self.status == "pending"
        return {
            "id": self.id,
            "dedupe_key": self.dedupe_key,
            "event": event,
            "channel": self.channel,
            "recipient": self.recipient[:_RECIPIENT_LIMIT],
            "subject": self.subject[:_SUBJECT_LIMIT],
            "payload": self.payload,
            "status": self.status,
            "attempts": 1 if pending else 0,
            "last_error": self.error[:ERROR_LIMIT] if self.error else None,
            "next_attempt_at": now + LEASE if pending else None,
            "created_at": now,
            "sent_at": None,
        }


def _delivery(message: Message, channel: str, recipient: str, who: str) -> Delivery:
    """`who` is what de-duplicates: the webhook, or the user's name (stable across address
    changes)."""

    key = dedupe_key(message.key, channel, who)
    return Delivery(stable_id("notifications", key), key, channel, recipient, message.title)


def slack_mentions(
    subscribers: list[Recipient], mentioned: tuple[str, ...], users: Mapping[str, Recipient]
) -> list[str]:
    """`<@ID>` or `@name` for each subscriber, then each mentioned name, without repeats."""
    mentions = [person.slack_mention for person in subscribers]
    mentions += [users[name].slack_mention if name in users else f"@{name}" for name in mentioned]
    return list(dict.fromkeys(mentions))


def slack_delivery(message: Message, mentions: list[str], templates: Templates) -> Delivery:
    """The one Slack post of `message`."""
    delivery = _delivery(message, "slack", SLACK_RECIPIENT, SLACK_RECIPIENT)
    try:
        delivery.payload = templates.slack(message, mentions)
    except Exception as error:  # recorded as failed; the other deliveries go on
        delivery.status, delivery.error = "failed", str(error)
    return delivery


def skipped_delivery(message: Message, channel: str, person: Recipient, why: str) -> Delivery:
    """A notification to `person` that is recorded but not sent, saying `why`."""
    delivery = _delivery(message, channel, person.name, person.name)
    delivery.status, delivery.error = "skipped", why
    return delivery


def email_delivery(
    message: Message,
    person: Recipient,
    templates: Templates,
    sender: SmtpSender,
    unsubscribe_url: str | None,
    public_url: str | None,
) -> Delivery:
    """The e-mail of `message` to `person`, with their own unsubscribe link if any."""
    if not person.email:
        return skipped_delivery(
            message, "email", person, f"user {person.name} has no e-mail address"
        )
    delivery = _delivery(message, "email", person.email, person.name)
    try:
        rendered = templates.email(message, person, unsubscribe_url, public_url)
    except Exception as error:
        delivery.status, delivery.error = "failed", str(error)
        return delivery
    delivery.subject = rendered.subject
    delivery.payload = {
        "to": person.email,
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "unsubscribe_url": unsubscribe_url,
        # The row's id: every retry carries the same Message-ID, so receivers drop repeats.
        "message_id": sender.message_id(str(delivery.id)),
    }
    return delivery
