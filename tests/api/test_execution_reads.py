"""GET /executions (tenant scope), /executions/{id}, /stages, /log and /logs/search: what
the CLI shows, paged, and never another tenant's rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, select

from tests.api.conftest import audit_events, bearer, secret_for
from tests.api.tenant_data import PIPELINE_OF, store_tenants
from timbel_dagster.warehouse.read import log_search
from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution

# Which services' rows each principal sees: their tenant's and the one in no tenant.
SEES = {"dev_a": {"cart", "wiki"}, "dev_b": {"ledger", "wiki"}, "ops": {"cart", "ledger", "wiki"}}


@pytest.fixture
def ids(engine, warehouse_url) -> dict[str, list[uuid.UUID]]:
    return store_tenants(engine, warehouse_url)


def _headers(engine, user: str) -> dict[str, str]:
    return bearer(secret_for(engine, user))


def _walk(client, headers, path: str, params: dict) -> list[dict]:
    items, cursor = [], None
    for _ in range(50):
        response = client.get(path, headers=headers,
                              params=params | ({"cursor": cursor} if cursor else {}))  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor walk did not end")


@pytest.mark.parametrize("user", sorted(SEES))
def test_the_execution_list_shows_only_visible_tenants(client, engine, ids, user) -> None:
    items = _walk(client, _headers(engine, user), "/api/v1/executions", {"limit": 2})
    pipelines = {item["pipeline"] for item in items}
    assert pipelines == {PIPELINE_OF[s] for s in SEES[user]}
    assert len(items) == 3 * len(SEES[user]) == len({item["id"] for item in items})


@pytest.mark.parametrize("batch", [1, log_search.BATCH])
@pytest.mark.parametrize("user", sorted(SEES))
def test_log_search_shows_only_visible_tenants_page_by_page(
    client, engine, ids, user, batch, monkeypatch
) -> None:
    # batch 1: the search reads one chunk per query, so continuing between batches counts
    monkeypatch.setattr(log_search, "BATCH", batch)
    items = _walk(client, _headers(engine, user), "/api/v1/logs/search", {"q": "boom", "limit": 2})
    assert {item["pipeline"] for item in items} == {PIPELINE_OF[s] for s in SEES[user]}
    # every matching line once: one "boom" line per execution
    assert len(items) == 3 * len(SEES[user])
    assert len({item["execution_id"] for item in items}) == len(items)
    assert all(item["line_number"] == 2 and "boom" in item["line"] for item in items)


def test_one_execution_with_stages_and_percentiles(client, engine, ids) -> None:
    ident = ids["cart"][2]
    response = client.get(f"/api/v1/executions/{ident}", headers=_headers(engine, "dev_a"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(ident) and body["tenant"] == "acme" and body["service"] == "cart"
    assert [s["name"] for s in body["stages"]] == ["build", "test"]
    assert body["stages"][0]["offset_seconds"] == 0.0
    assert body["pipeline_percentiles"]["executions"] == 3
    assert body["pipeline_percentiles"]["p50_seconds"] == 120.0
    # a prefix works as on the command line
    prefix = str(ident)[:8]
    again = client.get(f"/api/v1/executions/{prefix}", headers=_headers(engine, "dev_a"))
    assert again.json()["id"] == str(ident)


@pytest.mark.parametrize("suffix", ["", "/stages", "/log"])
def test_another_tenants_execution_is_refused_and_audited(client, engine, ids, suffix) -> None:
    ident = ids["ledger"][0]
    response = client.get(f"/api/v1/executions/{ident}{suffix}", headers=_headers(engine, "dev_a"))
    assert response.status_code == 403, response.text
    assert "globex" in response.json()["detail"]
    [(actor, target, details)] = audit_events(engine, "api.refused")
    assert actor == "dev_a" and target.endswith(f"{ident}{suffix}") and details["status"] == 403
    ops = client.get(f"/api/v1/executions/{ident}{suffix}", headers=_headers(engine, "ops"))
    assert ops.status_code == 200


@pytest.mark.parametrize("suffix", ["", "/stages", "/log"])
def test_an_unknown_execution_is_404(client, engine, ids, suffix) -> None:
    response = client.get(f"/api/v1/executions/{uuid.uuid4()}{suffix}",
                          headers=_headers(engine, "ops"))  # fmt: skip
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_short_prefix_is_422_on_the_id(client, engine, ids) -> None:
    response = client.get("/api/v1/executions/abc", headers=_headers(engine, "ops"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "id"]


def test_stages_in_order(client, engine, ids) -> None:
    response = client.get(f"/api/v1/executions/{ids['wiki'][0]}/stages",
                          headers=_headers(engine, "viewer"))  # fmt: skip
    assert [s["name"] for s in response.json()["items"]] == ["build", "test"]


def test_the_log_pages_chunk_by_chunk_and_joins_to_the_whole(client, engine, ids) -> None:
    path = f"/api/v1/executions/{ids['cart'][0]}/log"
    chunks = _walk(client, _headers(engine, "dev_a"), path, {"limit": 1})
    assert [c["start_offset"] for c in chunks] == [0, 100]
    assert "".join(c["content"] for c in chunks) == "start cart\nboom cart failed\n"


def test_logs_need_a_developer(client, engine, ids) -> None:
    response = client.get(f"/api/v1/executions/{ids['wiki'][0]}/log",
                          headers=_headers(engine, "viewer"))  # fmt: skip
    assert response.status_code == 403
    search = client.get("/api/v1/logs/search", params={"q": "boom"},
                        headers=_headers(engine, "viewer"))  # fmt: skip
    assert search.status_code == 403


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"q": ""}, ["query", "q"]),
        ({"q": "ab"}, ["query", "q"]),  # no trigram index serves under 3 characters
        ({"q": " x  "}, ["query", "q"]),
        ({"q": "xyz", "cursor": "bad"}, ["query", "cursor"]),
    ],
)
def test_bad_search_parameters_are_422(client, engine, ids, params, loc) -> None:
    response = client.get("/api/v1/logs/search", params=params, headers=_headers(engine, "ops"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == loc
    if params["q"].strip() and loc == ["query", "q"]:
        assert "at least 3 characters" in response.text


def test_an_id_prefix_is_a_range_of_ids_on_both_backends(client, engine, ids) -> None:
    twins = [uuid.UUID("abcdef01-0000-4000-8000-000000000001"),
             uuid.UUID("abcdef02-0000-4000-8000-000000000002")]  # fmt: skip
    with engine.begin() as connection:
        pipeline = connection.execute(
            select(Pipeline.id).where(Pipeline.name == "docs/wiki")
        ).scalar_one()
        connection.execute(insert(PipelineExecution), [
            {"id": twin, "source": "gitlab", "pipeline_id": pipeline, "external_id": f"t{n}",
             "status": "success"}
            for n, twin in enumerate(twins)
        ])  # fmt: skip
    headers = _headers(engine, "ops")
    one = client.get("/api/v1/executions/ABCDEF02-00", headers=headers)
    assert one.status_code == 200 and one.json()["id"] == str(twins[1])
    both = client.get("/api/v1/executions/abcdef0", headers=headers)
    assert both.status_code == 422 and "ambiguous" in both.json()["errors"][0]["msg"]
    assert client.get("/api/v1/executions/abcdef03", headers=headers).status_code == 404
    assert client.get("/api/v1/executions/nothex", headers=headers).status_code == 404
