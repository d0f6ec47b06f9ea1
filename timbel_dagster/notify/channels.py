"""Which notification channels the settings configure.

A channel whose settings are missing is left out with one log line saying which settings
would turn it on; it never raises, because this runs while the Dagster code location loads
and a missing SMTP setting must not take the whole location down.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, TypeAlias

from timbel_dagster.notify.email import SmtpSender
from timbel_dagster.notify.slack import SlackWebhook

if TYPE_CHECKING:
    from timbel_dagster.settings import Settings

Channel: TypeAlias = SlackWebhook | SmtpSender

logger = logging.getLogger(__name__)


class Log(Protocol):
    """What is used of a logger: `logging.Logger` and Dagster's `context.log` both fit."""

    def debug(self, msg: str) -> object: ...
    def info(self, msg: str) -> object: ...
    def warning(self, msg: str) -> object: ...


def _slack(settings: Settings, log: Log) -> SlackWebhook | None:
    if settings.slack_webhook_url is None:
        log.info("Slack notifications are off: set SLACK_WEBHOOK_URL to turn them on")
        return None
    try:
        return SlackWebhook(settings.slack_webhook_url.get_secret_value())
    except ValueError as error:
        log.warning(f"Slack notifications are off: {error}")
        return None


def _missing_smtp_settings(settings: Settings) -> list[str]:
    missing = [
        name
        for name, value in (("SMTP_HOST", settings.smtp_host), ("SMTP_FROM", settings.smtp_from))
        if not value
    ]
    # A user without a password (or the reverse) is half a login: the server would refuse it.
    if settings.smtp_user and settings.smtp_password is None:
        missing.append("SMTP_PASSWORD")
    if settings.smtp_password is not None and not settings.smtp_user:
        missing.append("SMTP_USER")
    return missing


def _email(settings: Settings, log: Log) -> SmtpSender | None:
    missing = _missing_smtp_settings(settings)
    if missing:
        log.warning(f"e-mail notifications are off: set {' and '.join(missing)}")
        return None
    assert settings.smtp_host and settings.smtp_from  # checked above, for the type checker
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        return SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=password,
            sender=settings.smtp_from,
            timeout=settings.smtp_timeout_seconds,
        )
    except ValueError as error:
        log.warning(f"e-mail notifications are off: {error}")
        return None


def configured_channels(settings: Settings, log: Log | None = None) -> dict[str, Channel]:
    """The channels `settings` turn on, by name (`slack`, `email`).

    Args:
        settings: the settings to read.
        log: where to say which channels are off and why; this module's logger by default.

    Returns:
        Only the fully configured channels; an empty dict when none is.
    """
    log = log or logger
    channels: dict[str, Channel] = {}
    slack = _slack(settings, log)
    if slack is not None:
        channels["slack"] = slack
    email = _email(settings, log)
    if email is not None:
        channels["email"] = email
    return channels
