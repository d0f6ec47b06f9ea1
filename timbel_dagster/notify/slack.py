"""Posting to a Slack incoming webhook.

Slack answers 200 `ok`, or an error code in the body: 400 `invalid_payload` /
`invalid_blocks`, 403 `action_prohibited`, 404 `no_service` / `channel_not_found`,
410 `channel_is_archived` (these will not change by retrying), 429 with `Retry-After`, and
5xx when it is in trouble. The webhook URL is a secret (anyone holding it can post), so it
never appears in an error, a log line or a repr.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from timbel_dagster.notify.errors import PermanentSendError, RetryableSendError

CHANNEL = "slack webhook"
_BODY_SHOWN = 200


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; Slack sends whole seconds, so dates are ignored."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


class SlackWebhook:
    """A Slack incoming webhook.

    Args:
        url: the webhook URL (secret).
        timeout_seconds: connect and read timeout of each post.
    """

    def __init__(self, url: str, timeout_seconds: float = 10) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("SLACK_WEBHOOK_URL: not an http(s) URL")
        self._url = url
        self._secret_parts = [p for p in (url, parts.path, parts.query) if len(p) > 1]
        self.timeout_seconds = timeout_seconds

    def __repr__(self) -> str:
        return f"SlackWebhook(url='***', timeout_seconds={self.timeout_seconds})"

    def _scrub(self, text: str) -> str:
        """`text` without the URL or its path (requests puts both into its messages)."""
        for part in self._secret_parts:
            text = text.replace(part, "***")
        return text

    def send(self, payload: dict[str, Any]) -> None:
        """Post `payload` (Block Kit JSON) to the webhook.

        Raises:
            PermanentSendError: Slack refused it (4xx other than 429) or the URL is unusable.
            RetryableSendError: 429 (with `retry_after`), 5xx, a timeout or a connection error.
        """
        import requests

        try:
            response = requests.post(self._url, json=payload, timeout=self.timeout_seconds)
        except requests.Timeout:
            raise RetryableSendError(
                CHANNEL, f"no answer within {self.timeout_seconds:g} s"
            ) from None
        except requests.ConnectionError as error:
            # `from None`: the chained exception's message would carry the URL into logs.
            raise RetryableSendError(
                CHANNEL, f"connection failed: {self._scrub(str(error))}"
            ) from None
        except requests.RequestException as error:
            raise PermanentSendError(
                CHANNEL, f"cannot post: {type(error).__name__}: {self._scrub(str(error))}"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        body = self._scrub(response.text.strip())[:_BODY_SHOWN] or response.reason or ""
        detail = f"HTTP {status} {body}".strip()
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise RetryableSendError(CHANNEL, f"rate limited: {detail}", retry_after=retry_after)
        if status >= 500:
            raise RetryableSendError(CHANNEL, f"Slack is failing: {detail}")
        # 4xx: the payload, the webhook or its channel is wrong; the same post fails again.
        raise PermanentSendError(CHANNEL, f"refused: {detail}")
