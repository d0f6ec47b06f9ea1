"""The webhook client against a loopback HTTP server answering like Slack does."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from tests.notify.conftest import free_port
from timbel_dagster.notify.errors import PermanentSendError, RetryableSendError
from timbel_dagster.notify.slack import SlackWebhook

HOOK = "/services/T0TEAM/B0HOOK/s3cr3tWebhookToken"
SECRET = "s3cr3tWebhookToken"
PAYLOAD = {"text": "hi", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}


def test_200_ok_posts_the_json(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request(HOOK, method="POST").respond_with_data("ok")
    SlackWebhook(httpserver.url_for(HOOK)).send(PAYLOAD)
    request, _ = httpserver.log[0]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.data) == PAYLOAD


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "no_service"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ],
)
def test_4xx_is_permanent_and_keeps_the_url_secret(
    httpserver: HTTPServer, status: int, body: str
) -> None:
    httpserver.expect_oneshot_request(HOOK).respond_with_data(body, status=status)
    with pytest.raises(PermanentSendError) as error:
        SlackWebhook(httpserver.url_for(HOOK)).send(PAYLOAD)
    assert f"HTTP {status} {body}" in str(error.value)
    assert SECRET not in str(error.value)


@pytest.mark.parametrize(
    ("retry_after", "expected"), [("30", 30.0), ("1.5", 1.5), (None, None), ("soon", None)]
)
def test_429_is_retryable_with_retry_after(
    httpserver: HTTPServer, retry_after: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    httpserver.expect_oneshot_request(HOOK).respond_with_data(
        "rate_limited", status=429, headers=headers
    )
    with pytest.raises(RetryableSendError) as error:
        SlackWebhook(httpserver.url_for(HOOK)).send(PAYLOAD)
    assert error.value.retry_after == expected


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_oneshot_request(HOOK).respond_with_data("oops", status=status)
    with pytest.raises(RetryableSendError, match=f"HTTP {status}"):
        SlackWebhook(httpserver.url_for(HOOK)).send(PAYLOAD)


def test_connection_refused_is_retryable_and_never_shows_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}{HOOK}"
    with pytest.raises(RetryableSendError, match="connection failed") as error:
        SlackWebhook(url).send(PAYLOAD)
    assert SECRET not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert SECRET not in repr(SlackWebhook(url))


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


def test_no_answer_is_a_retryable_timeout(silent_server: int) -> None:
    webhook = SlackWebhook(f"http://127.0.0.1:{silent_server}{HOOK}", timeout_seconds=0.2)
    with pytest.raises(RetryableSendError, match=r"no answer within 0.2 s") as error:
        webhook.send(PAYLOAD)
    assert SECRET not in str(error.value)


def test_a_url_that_is_not_http_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="SLACK_WEBHOOK_URL: not an http") as error:
        SlackWebhook(f"hooks.slack.com{HOOK}")
    assert SECRET not in str(error.value)
