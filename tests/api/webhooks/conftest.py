"""The API with every webhook configured, and the senders' payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from timbel_dagster.api.app import create_app
from timbel_dagster.settings import load_settings
from timbel_dagster.warehouse.schema.identity import WebhookDelivery

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SECRETS = {
    "gitlab_webhook_secret": "gitlab-secret-1",
    "jenkins_webhook_secret": "jenkins-secret-2",
    "registry_webhook_secret": "registry-secret-3",
    "slack_signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
}


def fixture(*parts: str) -> Any:
    return json.loads(FIXTURES.joinpath(*parts).read_text())


@pytest.fixture
def hooked(engine, warehouse_url: str) -> Iterator[TestClient]:
    """A client of the API with every webhook's secret set."""
    settings = load_settings(timbel_database_url=warehouse_url, **SECRETS)
    with TestClient(create_app(settings)) as client:
        yield client


def deliveries(engine, source: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        query = (
            select(WebhookDelivery.delivery_key, WebhookDelivery.event, WebhookDelivery.subject,
                   WebhookDelivery.status)
            .where(WebhookDelivery.source == source)
            .order_by(WebhookDelivery.received_at)
        )  # fmt: skip
        return [dict(row._mapping) for row in connection.execute(query)]


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()
