"""GET /security/findings (open findings paged by id, one image's as the gate sees them),
/security/gate (the verdict `check_image` gives) and /rollbacks (tenant scoped, newest
first)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert

from tests.api.conftest import bearer, secret_for
from tests.api.tenant_data import store_tenants
from tests.api.test_execution_reads import SEES, _walk
from tests.security.findings import VULNERABLE, store
from timbel_dagster.security.policy import check_image, image_findings
from timbel_dagster.warehouse.schema.deploy import Rollback

IMAGE = "registry.example.com/shop/api:1.4.2"


def _headers(engine, user: str) -> dict[str, str]:
    return bearer(secret_for(engine, user))


@pytest.fixture
def scanned(engine, warehouse_url):
    store(warehouse_url, VULNERABLE, IMAGE)
    return engine


def test_findings_page_by_id_and_filter_by_severity(client, scanned) -> None:
    headers = _headers(scanned, "viewer")
    every = _walk(client, headers, "/api/v1/security/findings", {"limit": 1})
    with scanned.connect() as connection:
        expected = image_findings(connection, IMAGE)
    assert sorted(f["id"] for f in every) == sorted(f["id"] for f in expected)
    assert [f["id"] for f in every] == sorted(f["id"] for f in every)
    critical = _walk(client, headers, "/api/v1/security/findings",
                     {"severity": "CRITICAL", "image": IMAGE})  # fmt: skip
    assert {f["severity"] for f in critical} == {"CRITICAL"}
    assert len(critical) == 2


def test_findings_of_an_image_never_scanned_are_404(client, scanned) -> None:
    response = client.get("/api/v1/security/findings", params={"image": f"{IMAGE}x"},
                          headers=_headers(scanned, "viewer"))  # fmt: skip
    assert response.status_code == 404


def test_the_gate_is_check_images_verdict(client, scanned) -> None:
    response = client.get("/api/v1/security/gate", params={"image": IMAGE, "group": "prod"},
                          headers=_headers(scanned, "viewer"))  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    with scanned.connect() as connection:
        expected = check_image(connection, IMAGE, "prod")
    assert body["allowed"] is expected.allowed is False
    assert body["summary"] == expected.summary
    assert len(body["blocking"]) == len(expected.blocking) == 2


@pytest.mark.parametrize(("params", "loc"), [
    ({"image": IMAGE, "group": "qa"}, ["query", "group"]),
    ({"image": "not an image ref"}, ["query", "image"]),
])  # fmt: skip
def test_bad_gate_parameters_are_422(client, scanned, params, loc) -> None:
    response = client.get("/api/v1/security/gate", params=params,
                          headers=_headers(scanned, "viewer"))  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == loc


@pytest.fixture
def rolled_back(engine, warehouse_url):
    store_tenants(engine, warehouse_url)
    t0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    rows = [
        {
            "id": uuid.uuid4(), "idempotency_key": f"{service}-{n}", "service": service,
            "cluster": "prod-01", "namespace": service, "from_image": f"{service}:2",
            "to_image": f"{service}:1", "trigger": "health", "reason": "errors",
            "status": "done" if n else "failed", "dry_run": False, "details": {},
            "created_at": t0 + dt.timedelta(minutes=n % 2),  # ties on the time
        }
        for service in ("cart", "ledger", "wiki")
        for n in range(3)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(Rollback), rows)
    return engine


@pytest.mark.parametrize("user", sorted(SEES))
def test_rollbacks_show_only_visible_tenants(client, rolled_back, user) -> None:
    items = _walk(client, _headers(rolled_back, user), "/api/v1/rollbacks", {"limit": 2})
    assert {i["service"] for i in items} == SEES[user]
    assert len(items) == 3 * len(SEES[user]) == len({i["id"] for i in items})
    keys = [(i["created_at"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)


def test_rollbacks_filter_by_outcome(client, rolled_back) -> None:
    items = _walk(client, _headers(rolled_back, "ops"), "/api/v1/rollbacks", {"status": "failed"})
    assert len(items) == 3 and {i["status"] for i in items} == {"failed"}
