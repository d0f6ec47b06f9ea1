"""POST /webhooks/jenkins/{secret} and /webhooks/registry: recorded once per (job, build,
phase) and per registry event id; layer pushes and unknown events record nothing."""

from __future__ import annotations

import json

import pytest

from tests.api.webhooks.conftest import SECRETS, deliveries, fixture
from timbel_dagster.resources.jenkins.notification import full_name

JENKINS = f"/api/v1/webhooks/jenkins/{SECRETS['jenkins_webhook_secret']}"
REGISTRY = "/api/v1/webhooks/registry"
EVENTS = {
    "Authorization": f"Bearer {SECRETS['registry_webhook_secret']}",
    "Content-Type": "application/vnd.docker.distribution.events.v1+json",
}


@pytest.mark.parametrize(
    ("url", "name", "expected"),
    [
        ("job/shop/job/api/", "api", "shop/api"),
        ("job/api/", "api", "api"),
        ("", "api", "api"),
        ("view/all/job/api/", "api", "api"),
    ],
)
def test_full_name_from_the_job_url(url: str, name: str, expected: str) -> None:
    assert full_name(url, name) == expected


def test_jenkins_phases_are_recorded_once_each(hooked, engine) -> None:
    completed = fixture("jenkins", "notification.json")
    started = json.loads(json.dumps(completed))
    started["build"] |= {"phase": "STARTED", "status": None}
    assert hooked.post(JENKINS, json=started).status_code == 202
    assert hooked.post(JENKINS, json=completed).status_code == 202
    replay = hooked.post(JENKINS, json=completed)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert [(d["delivery_key"], d["subject"]) for d in deliveries(engine, "jenkins")] == [
        ("shop/api#18:STARTED", "shop/api"),
        ("shop/api#18:COMPLETED", "shop/api"),
    ]


def test_jenkins_notification_without_a_build_number_is_422(hooked, engine) -> None:
    data = fixture("jenkins", "notification.json")
    del data["build"]["number"]
    response = hooked.post(JENKINS, json=data)
    assert response.status_code == 422
    assert "build.number" in response.json()["detail"]
    assert deliveries(engine, "jenkins") == []


def test_registry_records_manifest_pushes_by_event_id(hooked, engine) -> None:
    body = json.dumps(fixture("registry_notification.json"))
    response = hooked.post(REGISTRY, content=body, headers=EVENTS)
    assert response.status_code == 202
    assert response.json()["detail"] == "1 of 1 manifest pushes recorded"
    assert deliveries(engine, "registry") == [
        {"delivery_key": "320678d8-ca14-430f-8bb6-4ca139cd83f7", "event": "push",
         "subject": "hello-world:latest", "status": "pending"}
    ]  # fmt: skip
    again = hooked.post(REGISTRY, content=body, headers=EVENTS)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(deliveries(engine, "registry")) == 1


def test_registry_envelope_without_manifest_pushes_is_ignored(hooked, engine) -> None:
    envelope = fixture("registry_notification.json")
    for event in envelope["events"]:
        event["action"] = "pull"
    response = hooked.post(REGISTRY, content=json.dumps(envelope), headers=EVENTS)
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert deliveries(engine, "registry") == []
