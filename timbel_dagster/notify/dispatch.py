"""Sending a message to everyone subscribed to it, once, with retries.

`Dispatcher.send` finds the subscribers per channel, records one `notifications` row per
event, channel and recipient (a row already there means it was sent, or is being sent: the
call is idempotent), renders, sends, and records the outcome. Slack gets one post per message
that mentions the subscribers; e-mail goes to each subscriber, with a personal signed
unsubscribe link when TIMBEL_PUBLIC_URL and TIMBEL_SECRET_KEY are set. A disabled subscriber
gets nothing: their row is recorded as `skipped`, saying so. Failures that may pass
are retried by `retry_due` with exponential backoff (or the server's Retry-After) from the
payload stored in the row; permanent ones and those out of attempts end as `failed`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from timbel_dagster.notify import planning, records
from timbel_dagster.notify.channels import Channel, Log, configured_channels
from timbel_dagster.notify.email import SmtpSender, unsubscribe_token
from timbel_dagster.notify.errors import PermanentSendError, RetryableSendError
from timbel_dagster.notify.messages import Message
from timbel_dagster.notify.records import NotificationResult
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.notify.subscriptions import subscribers, users_by_name
from timbel_dagster.notify.templates import Templates
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.notify import CHANNELS

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.engine import Engine

    from timbel_dagster.settings import Settings

logger = logging.getLogger(__name__)

UNSUBSCRIBE_PATH = "/unsubscribe"
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0


def backoff(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    """The wait before the next attempt after `attempts` attempts: the server's Retry-After
    when it gave one, else 30 s doubling per attempt, at most an hour."""
    if retry_after is not None:
        return dt.timedelta(seconds=retry_after)
    seconds = FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0)
    return dt.timedelta(seconds=min(seconds, MAX_RETRY_SECONDS))


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Dispatcher:
    """Sends messages on the configured channels and records each in `notifications`.

    Args:
        engine: the warehouse.
        channels: channel name (`slack`, `email`) -> sender, as `configured_channels` gives.
        max_attempts: attempts before a retryable failure becomes `failed`.
        public_url: TIMBEL_PUBLIC_URL, for unsubscribe links; None for no links.
        secret_key: TIMBEL_SECRET_KEY, signs unsubscribe links; None for no links.
        clock: returns the current time, timezone-aware; every time recorded comes from it.
        templates_dir: TIMBEL_TEMPLATES_DIR, templates that override the packaged ones.

    Raises:
        ValueError: an unknown channel name, `max_attempts` below 1, or a templates
            directory that does not exist.
    """

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Channel],
        max_attempts: int = 5,
        public_url: str | None = None,
        secret_key: str | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        templates_dir: Path | None = None,
    ) -> None:
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise ValueError(
                f"unknown channel(s) {', '.join(unknown)}; valid: {', '.join(CHANNELS)}"
            )
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.engine, self.channels, self.max_attempts = engine, dict(channels), max_attempts
        self.public_url = public_url.rstrip("/") if public_url else None
        self._secret_key, self._clock = secret_key, clock
        self.templates = Templates(templates_dir)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Engine | None = None,
        log: Log | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> Dispatcher:
        """A dispatcher for the channels, links and templates `settings` configure."""

        secret = settings.timbel_secret_key
        return cls(
            engine=engine or get_engine(settings.database_url),
            channels=configured_channels(settings, log),
            max_attempts=settings.timbel_notify_max_attempts,
            public_url=str(settings.timbel_public_url) if settings.timbel_public_url else None,
            secret_key=secret.get_secret_value() if secret else None,
            clock=clock,
            templates_dir=settings.timbel_templates_dir,
        )

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the dispatcher's clock returned a naive datetime; use aware UTC")
        return now.astimezone(dt.UTC)

    def unsubscribe_url(self, user: str, channel: str, event: str) -> str | None:
        """The personal one-click unsubscribe link, issued now (by the dispatcher's clock; it
        expires TIMBEL_UNSUBSCRIBE_LINK_DAYS later), or None without a public URL and key."""
        if not (self.public_url and self._secret_key):
            return None
        token = unsubscribe_token(user, channel, event, self._secret_key, issued_at=self._now())
        return f"{self.public_url}{UNSUBSCRIBE_PATH}?token={quote(token)}"

    def _plan(self, message: Message, rule: str | None) -> list[planning.Delivery]:
        found = subscribers(self.engine, message, rule)
        targets = found.enabled
        for channel in sorted(set(targets) - set(self.channels)):
            logger.debug(
                "%s: %s is not configured; its subscribers get nothing", message.key, channel
            )
        plan = []
        on_slack = targets.get("slack", [])
        # One post per message, and only when someone is to see it.
        if "slack" in self.channels and (on_slack or message.mentions):
            users = users_by_name(self.engine, message.mentions)
            mentions = planning.slack_mentions(on_slack, message.mentions, users)
            plan.append(planning.slack_delivery(message, mentions, self.templates))
        sender = self.channels.get("email")
        if isinstance(sender, SmtpSender):
            for person in targets.get("email", []):
                link = self.unsubscribe_url(person.name, "email", message.event)
                plan.append(
                    planning.email_delivery(
                        message, person, self.templates, sender, link, self.public_url
                    )
                )
        # A disabled subscriber gets nothing; a `skipped` row (and result, and log line)
        # says so on each channel that would have reached them.
        plan += [
            planning.skipped_delivery(
                message, channel, person, f"user {person.name} is disabled: not notified"
            )
            for channel, people in sorted(found.disabled.items())
            if self._sends_on(channel)
            for person in people
        ]
        return plan

    def _sends_on(self, channel: str) -> bool:
        """Whether `_plan` delivers on `channel`: Slack when configured, e-mail over SMTP."""
        if channel == "email":
            return isinstance(self.channels.get("email"), SmtpSender)
        return channel in self.channels

    def send(self, message: Message, rule: str | None = None) -> list[NotificationResult]:
        """Notify everyone subscribed to `message` (about alert rule `rule`, if any).

        Returns:
            One result per channel and recipient: what this call did, or, with `duplicate`
            set, what an earlier call recorded for the same message key.
        """
        now = self._now()
        plan = self._plan(message, rule)
        inserted = records.insert_new(self.engine, [d.row(message.event, now) for d in plan])
        results: list[NotificationResult] = []
        for delivery in plan:
            if delivery.dedupe_key not in inserted:
                continue
            if delivery.status == "pending":
                results.append(self._attempt(delivery.id, delivery.channel, delivery.payload, 1))
            else:
                logger.warning("%s: %s", delivery.dedupe_key, delivery.error)
                results += records.fetch(self.engine, [delivery.dedupe_key])
        earlier = [d.dedupe_key for d in plan if d.dedupe_key not in inserted]
        return results + records.fetch(self.engine, earlier, duplicate=True)

    def retry_due(self, limit: int = 100) -> list[NotificationResult]:
        """Send again the notifications whose retry is due (at most `limit`, oldest first)."""
        now = self._now()
        results = []
        for row in records.due(self.engine, now, limit):
            if row.attempts >= self.max_attempts:  # its last attempt was cut short
                error = f"gave up after {row.attempts} attempts; the last was interrupted"
                result = records.finish(
                    self.engine,
                    row.id,
                    status="failed",
                    last_error=error,
                    next_attempt_at=None,
                    sent_at=None,
                    only_if_attempts=row.attempts,
                )
                results += [result] if result else []
            elif records.claim(self.engine, row.id, row.attempts, now):
                results.append(self._attempt(row.id, row.channel, row.payload, row.attempts + 1))
        return results

    def _deliver(self, channel: str, payload: dict[str, Any]) -> None:
        sender = self.channels.get(channel)
        if channel == "slack" and isinstance(sender, SlackWebhook):
            sender.send(payload)
        elif channel == "email" and isinstance(sender, SmtpSender):
            sender.send(
                to=payload["to"],
                subject=payload["subject"],
                html=payload["html"],
                text=payload["text"],
                headers={"Message-ID": payload["message_id"]},
                unsubscribe_url=payload.get("unsubscribe_url"),
                date=self._now(),
            )
        else:
            raise PermanentSendError(channel, "this channel is not configured any more")

    def _attempt(
        self, row_id: uuid.UUID, channel: str, payload: dict[str, Any], attempts: int
    ) -> NotificationResult:
        """Make attempt number `attempts` (already claimed) and record how it went."""
        error: str | None = None
        permanent, retry_after = False, None
        try:
            self._deliver(channel, payload)
        except PermanentSendError as failure:
            error, permanent = str(failure), True
        except RetryableSendError as failure:
            error, retry_after = str(failure), failure.retry_after
        except Exception as failure:  # a bug or an unforeseen error: isolate it, retry it
            error = f"unexpected {type(failure).__name__}: {failure}"
        now = self._now()
        next_at, sent_at = None, None
        if error is None:
            status, sent_at = "sent", now
        elif permanent:
            status = "failed"
        elif attempts >= self.max_attempts:
            status, error = "failed", f"{error} (gave up after {attempts} attempts)"
        else:
            status, next_at = "retrying", now + backoff(attempts, retry_after)
        result = records.finish(
            self.engine,
            row_id,
            status=status,
            last_error=error[: planning.ERROR_LIMIT] if error else None,
            next_attempt_at=next_at,
            sent_at=sent_at,
        )
        assert result is not None  # an unconditional update of a row this call claimed
        log = logger.info if status == "sent" else logger.warning
        suffix = f": {error}" if error else ""
        log("notification %s %s (attempt %d)%s", result.dedupe_key, status, attempts, suffix)
        return result
