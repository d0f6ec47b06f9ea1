"""GET /api/v1/executions: the filters of `timbel executions list`, keyset pages that return
every execution once and in order (ties on the start time and executions not yet started
included), and 422s that name the bad parameter."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.api.conftest import bearer, secret_for
from timbel_dagster.api.pagination import make_cursor
from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
# (pipeline, status, minutes after T0 or None): two pairs start at the same moment, and one
# execution has not started, so the order needs the id and the NULL placement to be total.
EXECUTIONS = [
    ("shop/api", "success", 0),
    ("shop/api", "failed", 10),
    ("shop/web", "success", 10),
    ("shop/web", "running", 20),
    ("shop/api", "success", 30),
    ("shop/api", "failed", 30),
    ("shop/web", "pending", None),
]


def _store(engine, executions=EXECUTIONS, source: str = "gitlab") -> list[dict]:
    pipelines = {name: uuid.uuid4() for name in {p for p, _, _ in executions}}
    stored = []
    with engine.begin() as connection:
        for name, ident in pipelines.items():
            connection.execute(
                Pipeline.__table__.insert().values(
                    id=ident, source=source, ci_system=source, name=name
                )
            )
        for number, (name, status, minutes) in enumerate(executions):
            started = None if minutes is None else T0 + dt.timedelta(minutes=minutes)
            ident = uuid.uuid4()
            connection.execute(
                PipelineExecution.__table__.insert().values(
                    id=ident, source=source, pipeline_id=pipelines[name],
                    external_id=str(number), status=status, started_at=started,
                )
            )  # fmt: skip
            stored.append({"id": ident, "pipeline": name, "status": status, "started": started})
    return stored


def _newest_first(rows: list[dict]) -> list[str]:
    """The documented order: not started yet first, then start time descending; ties by id
    descending."""
    by_id = sorted(rows, key=lambda r: r["id"].int, reverse=True)
    started = [r for r in by_id if r["started"] is not None]
    ordered = sorted(started, key=lambda r: r["started"], reverse=True)
    return [str(r["id"]) for r in [r for r in by_id if r["started"] is None] + ordered]


@pytest.fixture
def stored(engine) -> list[dict]:
    return _store(engine)


@pytest.fixture
def headers(engine) -> dict[str, str]:
    return bearer(secret_for(engine, "viewer"))


def _walk(client, headers, params: dict) -> tuple[list[str], int]:
    ids, pages, cursor = [], 0, None
    while True:
        response = client.get("/api/v1/executions", headers=headers,
                              params=params | ({"cursor": cursor} if cursor else {}))  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(body["items"]) == params["limit"]


def test_one_page_holds_every_execution_newest_first(client, headers, stored) -> None:
    body = client.get("/api/v1/executions", headers=headers).json()
    assert [item["id"] for item in body["items"]] == _newest_first(stored)
    assert body["next_cursor"] is None
    pending, first = body["items"][0], body["items"][1]
    assert (pending["status"], pending["started_at"]) == ("pending", None)
    assert first["pipeline"].startswith("shop/") and first["source"] == "gitlab"
    assert dt.datetime.fromisoformat(first["started_at"]) == T0 + dt.timedelta(minutes=30)


@pytest.mark.parametrize("limit", [4, 2, 1])
def test_a_cursor_walk_returns_every_execution_once_in_order(
    client, headers, stored, limit
) -> None:
    ids, pages = _walk(client, headers, {"limit": limit})
    assert ids == _newest_first(stored)
    assert pages == -(-len(stored) // limit)


def test_a_cursor_walk_keeps_the_filters(client, headers, stored) -> None:
    ids, pages = _walk(client, headers, {"limit": 1, "pipeline": "api", "status": "failed"})
    expected = [r for r in stored if r["pipeline"] == "shop/api" and r["status"] == "failed"]
    assert ids == _newest_first(expected) and pages == 2


def test_since_keeps_executions_started_from_then(client, headers, stored) -> None:
    since = (T0 + dt.timedelta(minutes=10)).isoformat()
    body = client.get("/api/v1/executions", headers=headers, params={"since": since}).json()
    expected = [r for r in stored if r["started"] and r["started"] >= T0 + dt.timedelta(minutes=10)]
    assert [item["id"] for item in body["items"]] == _newest_first(expected)
    # a time without a zone is UTC
    naive = client.get("/api/v1/executions", headers=headers,
                       params={"since": since.removesuffix("+00:00")}).json()  # fmt: skip
    assert naive == body


def test_an_execution_stored_during_the_walk_neither_repeats_nor_skips_one(
    client, headers, stored, engine
) -> None:
    first = client.get("/api/v1/executions", headers=headers, params={"limit": 3}).json()
    _store(engine, [("shop/new", "running", 60)], source="jenkins")  # newer than every page
    rest = client.get("/api/v1/executions", headers=headers,
                      params={"limit": 100, "cursor": first["next_cursor"]}).json()  # fmt: skip
    seen = [item["id"] for item in first["items"] + rest["items"]]
    assert seen == _newest_first(stored)


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"limit": "ten"}, ["query", "limit"]),
        ({"status": "exploded"}, ["query", "status"]),
        ({"since": "last tuesday"}, ["query", "since"]),
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ({"cursor": make_cursor(None, "not-a-uuid")}, ["query", "cursor"]),
    ],
)
def test_a_bad_parameter_is_422_naming_it(client, headers, params, loc) -> None:
    response = client.get("/api/v1/executions", headers=headers, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["type"]) == (422, "urn:timbel:problem:validation")
    assert [error["loc"] for error in body["errors"]] == [loc]
