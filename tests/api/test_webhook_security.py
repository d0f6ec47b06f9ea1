"""The webhook security matrix: for each sender, a missing or wrong secret, a tampered or
stale Slack request and a replay are refused (401, audited at most once a minute per
reason) or de-duplicated, with at most one effect; an unconfigured webhook is 404.

GitLab, Jenkins and the registry authenticate with a shared secret, not a signature of the
body: for them a tampered body with the right secret cannot be told from a real one, so
the tampered-body case is Slack's alone."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.api.conftest import audit_events
from tests.api.webhooks import conftest as webhooks
from tests.api.webhooks.conftest import SECRETS, count, deliveries, fixture
from tests.api.webhooks.slack import URL as SLACK_URL
from tests.api.webhooks.slack import click_body, pending_request, signed
from timbel_dagster.deploy.slack_decision import APPROVE
from timbel_dagster.warehouse.schema.models import PipelineExecution

GITLAB_URL = "/api/v1/webhooks/gitlab"
JENKINS_URL = "/api/v1/webhooks/jenkins/"
REGISTRY_URL = "/api/v1/webhooks/registry"
RESPONSE_URL = "http://127.0.0.1:9/unused"  # refusals never answer through it
hooked = webhooks.hooked  # the API with every webhook configured


@dataclass(frozen=True)
class Sender:
    source: str
    good: Callable[[TestClient], Response]
    missing: Callable[[TestClient], Response]
    wrong: Callable[[TestClient], Response]


def _gitlab(token: str | None) -> Callable[[TestClient], Response]:
    body = json.dumps(fixture("gitlab", "hooks", "pipeline_hook.json"))
    headers = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Webhook-UUID": "u-1"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return lambda client: client.post(GITLAB_URL, content=body, headers=headers)


def _jenkins(secret: str) -> Callable[[TestClient], Response]:
    return lambda client: client.post(JENKINS_URL + secret,
                                      json=fixture("jenkins", "notification.json"))  # fmt: skip


def _registry(authorization: str | None) -> Callable[[TestClient], Response]:
    body = json.dumps(fixture("registry_notification.json"))
    headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return lambda client: client.post(REGISTRY_URL, content=body, headers=headers)


def _slack(secret: str | None, number: int = 1) -> Callable[[TestClient], Response]:
    body = click_body("ULEAD", APPROVE, number, RESPONSE_URL)

    def send(client: TestClient) -> Response:
        # Signed when sent, not when this module is collected: a run that reaches the test
        # more than five minutes after collection would send a stale timestamp.
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        headers = signed(secret, body) if secret else form
        return client.post(SLACK_URL, content=body, headers=headers)

    return send


SENDERS = {
    "gitlab": Sender("gitlab", _gitlab(SECRETS["gitlab_webhook_secret"]), _gitlab(None),
                     _gitlab("not-the-secret")),
    "jenkins": Sender("jenkins", _jenkins(SECRETS["jenkins_webhook_secret"]), _jenkins(""),
                      _jenkins("not-the-secret")),
    "registry": Sender("registry", _registry(f"Bearer {SECRETS['registry_webhook_secret']}"),
                       _registry(None), _registry("Bearer not-the-secret")),
    "slack": Sender("slack", _slack(SECRETS["slack_signing_secret"]), _slack(None),
                    _slack("not-the-signing-secret")),
}  # fmt: skip


def _effects(engine, source: str) -> tuple[int, int]:
    return len(deliveries(engine, source)), count(engine, PipelineExecution.__table__)


def _refusals(engine, source: str) -> list[dict]:
    return [d for a, _t, d in audit_events(engine, "api.refused") if a == f"webhook:{source}"]


@pytest.mark.parametrize("source", SENDERS)
def test_missing_secret_is_refused_and_changes_nothing(hooked, engine, source: str) -> None:
    response = SENDERS[source].missing(hooked)
    # Jenkins' secret is the URL's last segment: without it there is no such route.
    assert response.status_code == (404 if source == "jenkins" else 401)
    assert response.headers["content-type"] == "application/problem+json"
    assert _effects(engine, source) == (0, 0)
    if source != "jenkins":
        assert [d["reason"] for d in _refusals(engine, source)] == ["missing"]


@pytest.mark.parametrize("source", SENDERS)
def test_wrong_secret_is_refused_audited_once_a_minute(hooked, engine, source: str) -> None:
    first, second = SENDERS[source].wrong(hooked), SENDERS[source].wrong(hooked)
    assert (first.status_code, second.status_code) == (401, 401)
    assert _effects(engine, source) == (0, 0)
    # Two refusals for the same reason within the minute: one audit event.
    assert _refusals(engine, source) == [{"status": 401, "reason": "wrong"}]


def test_jenkins_secret_never_reaches_the_audit_log(hooked, engine) -> None:
    SENDERS["jenkins"].wrong(hooked)
    [(_actor, target, _details)] = audit_events(engine, "api.refused")
    assert target == "POST /api/v1/webhooks/jenkins/{secret}"


@pytest.mark.parametrize("source", ["gitlab", "jenkins", "registry"])
def test_a_replay_is_recorded_once(hooked, engine, source: str) -> None:
    first, replay = SENDERS[source].good(hooked), SENDERS[source].good(hooked)
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert _effects(engine, source) == (1, 1 if source == "gitlab" else 0)
    assert len(audit_events(engine, "webhook.received")) == 1


def test_slack_tampered_body_is_refused(hooked, engine, warehouse_url) -> None:
    number = pending_request(warehouse_url)
    body = click_body("ULEAD", APPROVE, number, RESPONSE_URL)
    headers = signed(SECRETS["slack_signing_secret"], body)
    tampered = body.replace(b"ULEAD", b"UOPS")  # another user, same signature
    response = hooked.post(SLACK_URL, content=tampered, headers=headers)
    assert response.status_code == 401
    assert _refusals(engine, "slack") == [{"status": 401, "reason": "wrong"}]
    assert deliveries(engine, "slack") == [] and audit_events(engine, "deploy.approve") == []


@pytest.mark.parametrize("skew", [-310, 310])
def test_slack_stale_timestamp_is_refused(hooked, engine, warehouse_url, skew: int) -> None:
    number = pending_request(warehouse_url)
    body = click_body("ULEAD", APPROVE, number, RESPONSE_URL)
    # Correctly signed, but more than five minutes from now (either way).
    headers = signed(SECRETS["slack_signing_secret"], body, at=time.time() + skew)
    response = hooked.post(SLACK_URL, content=body, headers=headers)
    assert response.status_code == 401
    assert _refusals(engine, "slack") == [{"status": 401, "reason": "stale"}]
    assert deliveries(engine, "slack") == [] and audit_events(engine, "deploy.approve") == []


def test_slack_replay_decides_once(hooked, engine, warehouse_url, httpserver) -> None:
    httpserver.expect_request("/r", method="POST").respond_with_data("ok")
    number = pending_request(warehouse_url)
    body = click_body("ULEAD", APPROVE, number, httpserver.url_for("/r"))
    headers = signed(SECRETS["slack_signing_secret"], body)
    statuses = [hooked.post(SLACK_URL, content=body, headers=headers).json()["status"]
                for _ in range(3)]  # fmt: skip
    assert statuses == ["accepted", "duplicate", "duplicate"]
    assert len(audit_events(engine, "deploy.approve")) == 1


@pytest.mark.parametrize("source", SENDERS)
def test_an_unconfigured_webhook_is_404(client, engine, source: str) -> None:
    response = SENDERS[source].good(client)
    assert response.status_code == 404
    assert "not configured" in response.json()["detail"]
    assert _effects(engine, source) == (0, 0)
