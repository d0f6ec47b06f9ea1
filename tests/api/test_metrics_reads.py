"""GET /metrics/dora: `timbel dora --json`'s figures, one service's only within its tenant,
and an unknown service named as the bad parameter."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert

from tests.api.conftest import bearer, secret_for
from tests.api.tenant_data import store_tenants
from timbel_dagster.deploy.dora_report import dora_report
from timbel_dagster.warehouse.schema.models import Deployment

MON = dt.datetime(2026, 10, 5, 10, tzinfo=dt.UTC)


@pytest.fixture
def deployments(engine, warehouse_url) -> None:
    store_tenants(engine, warehouse_url)
    rows = [
        {
            "id": uuid.uuid4(), "source": "jenkins", "external_id": f"{service}-{day}",
            "service": service, "environment": "prod", "kind": "release",
            "status": "failed" if day % 3 == 2 else "success",
            "started_at": MON + dt.timedelta(days=day),
            "completed_at": MON + dt.timedelta(days=day, minutes=10),
        }
        for service in ("cart", "ledger")
        for day in range(14)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(Deployment), rows)


def _get(client, engine, user: str, **params):
    return client.get("/api/v1/metrics/dora", params=params,
                      headers=bearer(secret_for(engine, user)))  # fmt: skip


@pytest.mark.parametrize("service", [None, "cart"])
def test_dora_is_what_the_cli_prints(client, engine, deployments, service) -> None:
    params = {"weeks": 2} | ({"service": service} if service else {})
    response = _get(client, engine, "dev_a", **params)
    assert response.status_code == 200, response.text
    body = response.json()
    with engine.connect() as connection:
        expected = dora_report(connection, service, 2)
    assert body["summary"]["deployments"] == expected["summary"]["deployments"] > 0
    assert body["summary"]["change_failure_rate"] == expected["summary"]["change_failure_rate"]
    assert [w["week_start"] for w in body["weekly"]] == [
        w["week_start"].isoformat() for w in expected["weekly"]
    ]
    assert body["service"] == (service or "*")


def test_another_tenants_service_is_refused(client, engine, deployments) -> None:
    assert _get(client, engine, "dev_a", service="ledger").status_code == 403
    assert _get(client, engine, "dev_b", service="ledger").status_code == 200
    assert _get(client, engine, "ops", service="ledger").status_code == 200


def test_an_unknown_service_is_422_on_service(client, engine, deployments) -> None:
    response = _get(client, engine, "ops", service="carts")
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["query", "service"] and "cart" in error["msg"]


def test_no_deployments_is_an_empty_report(client, engine, warehouse_url) -> None:
    store_tenants(engine, warehouse_url)
    body = _get(client, engine, "ops").json()
    assert body["summary"] is None and body["weekly"] == [] and body["service"] == "*"
