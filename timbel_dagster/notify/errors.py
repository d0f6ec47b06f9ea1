"""Typed errors of the notification channels and templates.

A channel raises `PermanentSendError` when sending again cannot help (a refused recipient, a
webhook that no longer exists) and `RetryableSendError` when it may (a 5xx answer, a 429, a
timeout, a dropped connection); the dispatcher records the first as failed at once and
schedules the second for another attempt.
"""

from __future__ import annotations

from jinja2.sandbox import SecurityError


class SendError(RuntimeError):
    """Sending a notification failed.

    Attributes:
        channel: where it was sent (`slack webhook`, `smtp mail.example.com:587`).
        detail: what was wrong; never a secret such as the webhook URL.
    """

    def __init__(self, channel: str, detail: str) -> None:
        self.channel, self.detail = channel, detail
        super().__init__(f"{channel}: {detail}")


class PermanentSendError(SendError):
    """Sending again will not help: the dispatcher marks the notification failed."""


class RetryableSendError(SendError):
    """Sending again later may work; `retry_after` is the wait the server asked for, if any."""

    def __init__(self, channel: str, detail: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(channel, detail)


class TemplateRenderError(ValueError):
    """A notification template does not load or render; names the file and, if known, line.

    Attributes:
        template: the template's name (its file name inside the templates directory).
        filename: the path it was loaded from, when known.
        line: the line of the template (or of its output, for invalid JSON), when known.
    """

    def __init__(
        self, template: str, detail: str, filename: str | None = None, line: int | None = None
    ) -> None:
        self.template, self.filename, self.line, self.detail = template, filename, line, detail
        where = filename or template
        at = f", line {line}" if line is not None else ""
        super().__init__(f"notification template {where}{at}: {detail}")


class TemplateRefusedError(TemplateRenderError, SecurityError):
    """The sandbox refused a notification template (an override in TIMBEL_TEMPLATES_DIR is
    someone's text): Python internals, or a limit of work, size or time crossed."""
