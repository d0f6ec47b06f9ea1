"""GET /pipelines (tenant scope, pages), /pipelines/{id}/stats (what `timbel executions
stats` computes) and /audit/events (`timbel audit search`, paged by id)."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import bearer, secret_for
from tests.api.tenant_data import PIPELINE_OF, store_tenants
from tests.api.test_execution_reads import SEES, _walk
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.read.history import duration_percentiles


@pytest.fixture
def ids(engine, warehouse_url) -> dict[str, list[uuid.UUID]]:
    return store_tenants(engine, warehouse_url)


def _headers(engine, user: str) -> dict[str, str]:
    return bearer(secret_for(engine, user))


@pytest.mark.parametrize("user", sorted(SEES))
def test_the_pipeline_list_shows_only_visible_tenants(client, engine, ids, user) -> None:
    items = _walk(client, _headers(engine, user), "/api/v1/pipelines", {"limit": 1})
    assert [i["name"] for i in items] == sorted(PIPELINE_OF[s] for s in SEES[user])


def _pipeline_id(client, engine, name: str) -> str:
    body = client.get("/api/v1/pipelines", params={"name": name},
                      headers=_headers(engine, "ops")).json()  # fmt: skip
    [item] = body["items"]
    return item["id"]


def test_stats_are_the_cli_figures(client, engine, ids) -> None:
    ident = _pipeline_id(client, engine, "acme/cart")
    response = client.get(f"/api/v1/pipelines/{ident}/stats", headers=_headers(engine, "dev_a"))
    assert response.status_code == 200, response.text
    body = response.json()
    with engine.connect() as connection:
        [expected] = duration_percentiles(connection, ["acme/cart"])
    assert body["stats"] == expected
    assert body["stats"]["executions"] == 3 and body["stats"]["success_rate"] == 0.6667
    assert body["pipeline"]["tenant"] == "acme"


def test_stats_of_another_tenants_pipeline_are_refused(client, engine, ids) -> None:
    ident = _pipeline_id(client, engine, "globex/ledger")
    response = client.get(f"/api/v1/pipelines/{ident}/stats", headers=_headers(engine, "dev_a"))
    assert response.status_code == 403
    unknown = client.get(f"/api/v1/pipelines/{uuid.uuid4()}/stats",
                         headers=_headers(engine, "dev_a"))  # fmt: skip
    assert unknown.status_code == 404


def _events(engine, count: int) -> None:
    with engine.begin() as connection:
        for number in range(count):
            actor = "dana" if number % 2 else "ops"
            append_event(connection, actor=actor, action="deploy.approve",
                         target=f"request {number}", details={})  # fmt: skip


def test_audit_events_page_by_id_newest_first_with_filters(client, engine) -> None:
    _events(engine, 7)
    headers = _headers(engine, "ops")
    items = _walk(client, headers, "/api/v1/audit/events",
                  {"limit": 2, "actor": "dana", "action": "deploy."})  # fmt: skip
    assert [i["target"] for i in items] == ["request 5", "request 3", "request 1"]
    ids = [i["id"] for i in items]
    assert ids == sorted(ids, reverse=True)


def test_audit_search_is_for_operations(client, engine) -> None:
    response = client.get("/api/v1/audit/events", headers=_headers(engine, "lead"))
    assert response.status_code == 403


def test_audit_until_before_since_is_422(client, engine) -> None:
    response = client.get(
        "/api/v1/audit/events",
        params={"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
        headers=_headers(engine, "ops"),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "until"]
