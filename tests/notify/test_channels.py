from __future__ import annotations

import logging

import pytest

from timbel_dagster.notify.channels import configured_channels
from timbel_dagster.notify.email import SmtpSender
from timbel_dagster.notify.slack import SlackWebhook
from timbel_dagster.settings import load_settings

WEBHOOK = "https://hooks.slack.com/services/T0/B0/s3cr3t"
NOTHING = {
    "slack_webhook_url": None,
    "smtp_host": None,
    "smtp_from": None,
    "smtp_user": None,
    "smtp_password": None,
}


def _settings(**overrides: object):
    return load_settings(**{**NOTHING, **overrides})


class Recorder:
    """Stands in for Dagster's `context.log`."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def debug(self, msg: str) -> None:
        self.lines.append(("debug", msg))

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))


def test_everything_configured() -> None:
    log = Recorder()
    channels = configured_channels(
        _settings(
            slack_webhook_url=WEBHOOK,
            smtp_host="mail.example.com",
            smtp_from="timbel@example.com",
            smtp_user="timbel",
            smtp_password="pw",
            smtp_security="ssl",
            smtp_port=465,
        ),
        log,
    )
    assert isinstance(channels["slack"], SlackWebhook)
    sender = channels["email"]
    assert isinstance(sender, SmtpSender)
    assert (sender.host, sender.port, sender.security, sender.user) == (
        "mail.example.com",
        465,
        "ssl",
        "timbel",
    )
    assert log.lines == []
    assert "s3cr3t" not in repr(channels) and "pw" not in repr(sender)


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({}, "SMTP_HOST and SMTP_FROM"),
        ({"smtp_host": "mail.example.com"}, "SMTP_FROM"),
        ({"smtp_from": "timbel@example.com"}, "SMTP_HOST"),
        (
            {"smtp_host": "mail", "smtp_from": "t@example.com", "smtp_user": "timbel"},
            "SMTP_PASSWORD",
        ),
        ({"smtp_host": "mail", "smtp_from": "t@example.com", "smtp_password": "pw"}, "SMTP_USER"),
    ],
)
def test_email_partly_configured_is_one_warning_and_no_crash(
    overrides: dict, missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="timbel_dagster.notify")
    channels = configured_channels(_settings(slack_webhook_url=WEBHOOK, **overrides))
    assert list(channels) == ["slack"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"e-mail notifications are off: set {missing}"]


def test_slack_absent_is_only_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="timbel_dagster.notify")
    channels = configured_channels(
        _settings(smtp_host="mail.example.com", smtp_from="timbel@example.com")
    )
    assert list(channels) == ["email"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "Slack notifications are off: set SLACK_WEBHOOK_URL to turn them on")
    ]


def test_a_malformed_webhook_is_a_warning_without_the_url() -> None:
    log = Recorder()
    channels = configured_channels(_settings(slack_webhook_url="hooks.slack.com/s3cr3t"), log)
    assert "slack" not in channels
    assert ("warning", "Slack notifications are off: SLACK_WEBHOOK_URL: not an http(s) URL") in (
        log.lines
    )
    assert not any("s3cr3t" in line for _, line in log.lines)
