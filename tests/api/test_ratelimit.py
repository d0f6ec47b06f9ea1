"""Rate limits per token: a tiny limit, the RateLimit headers, 429 with Retry-After, the
write bucket apart from the read bucket, and bad tokens limited by the client's address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import bearer, secret_for
from timbel_dagster.api.app import create_app
from timbel_dagster.api.deps import require
from timbel_dagster.identity.principal import Principal
from timbel_dagster.settings import load_settings


@pytest.fixture
def app(engine, warehouse_url: str) -> FastAPI:
    app = create_app(
        load_settings(
            timbel_database_url=warehouse_url,
            timbel_api_rate_limit="3/minute",
            timbel_api_write_rate_limit="1/minute",
        )
    )

    # No write route is built in this branch: a probe names a write action of the table.
    @app.post("/api/v1/probe")
    def probe(who: Annotated[Principal, Depends(require("templates.rate"))]) -> dict:
        return {"user": who.user}

    return app


@pytest.fixture
def limited(app) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def test_reads_over_the_limit_are_429_with_retry_after(limited, engine) -> None:
    dev = bearer(secret_for(engine, "dev"))
    answers = [limited.get("/api/v1/executions", headers=dev) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == answers[0].headers["RateLimit-Limit"] == "3"
    over = answers[3]
    assert over.headers["content-type"] == "application/problem+json"
    assert over.json()["type"] == "urn:timbel:problem:rate-limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    # /me counts against the same read bucket.
    assert limited.get("/api/v1/me", headers=dev).status_code == 429


def test_the_limit_is_per_token(limited, engine) -> None:
    dev, lead = bearer(secret_for(engine, "dev")), bearer(secret_for(engine, "lead"))
    for _ in range(3):
        assert limited.get("/api/v1/me", headers=dev).status_code == 200
    assert limited.get("/api/v1/me", headers=dev).status_code == 429
    assert limited.get("/api/v1/me", headers=lead).status_code == 200


def test_writes_have_their_own_bucket(limited, engine) -> None:
    dev = bearer(secret_for(engine, "dev"))
    assert limited.post("/api/v1/probe", headers=dev).status_code == 200
    refused = limited.post("/api/v1/probe", headers=dev)
    assert refused.status_code == 429 and "write rate limit of 1" in refused.json()["detail"]
    assert limited.get("/api/v1/me", headers=dev).status_code == 200  # reads still open


def test_bad_tokens_are_limited_by_client_address(limited) -> None:
    answers = [limited.get("/api/v1/me", headers=bearer("tbl_nope")).status_code
               for _ in range(4)]  # fmt: skip
    assert answers == [401, 401, 401, 429]
