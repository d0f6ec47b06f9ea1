"""Rate limits per token: a tiny limit, the RateLimit headers, 429 with Retry-After, the
write bucket apart from the read bucket, bad tokens limited by the client's address; and
the count shared by several API processes through the machine's real Redis, with the
per-process fallback while the store does not answer."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import bearer, secret_for
from tests.conftest import missing_service
from timbel_dagster.api.app import create_app
from timbel_dagster.api.deps import require
from timbel_dagster.identity.principal import Principal
from timbel_dagster.settings import SettingsError, load_settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def limited_app(warehouse_url: str, storage: str = "memory://") -> FastAPI:
    """An app allowing 3 reads and 1 write a minute per token, counted in `storage`."""
    return create_app(
        load_settings(
            timbel_database_url=warehouse_url,
            timbel_api_rate_limit="3/minute",
            timbel_api_write_rate_limit="1/minute",
            timbel_api_rate_limit_storage=storage,
        )
    )


@pytest.fixture
def app(engine, warehouse_url: str) -> FastAPI:
    app = limited_app(warehouse_url)

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


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis (DESIGN.md: it runs beside PostgreSQL); keys are per new token,
    so tests do not see each other's counts."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        missing_service(f"Redis at {REDIS_URL} unreachable: {error}")
    return REDIS_URL


def test_workers_sharing_redis_share_one_limit(engine, warehouse_url, redis_url) -> None:
    """Two API processes (two apps, as two uvicorn workers would be) count one token's reads
    together: the fourth read is refused by whichever of them gets it."""
    dev = bearer(secret_for(engine, "dev"))
    with (
        TestClient(limited_app(warehouse_url, redis_url)) as one,
        TestClient(limited_app(warehouse_url, redis_url)) as two,
    ):
        answers = [client.get("/api/v1/me", headers=dev) for client in (one, two, one, two)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]


def test_workers_counting_in_memory_count_apart(engine, warehouse_url) -> None:
    """memory:// is per process: what docs/configuration.md says the Redis store is for."""
    dev = bearer(secret_for(engine, "dev"))
    with (
        TestClient(limited_app(warehouse_url)) as one,
        TestClient(limited_app(warehouse_url)) as two,
    ):
        answers = [client.get("/api/v1/me", headers=dev) for client in (one, two, one, two)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_store_falls_back_to_counting_in_the_process(
    engine, warehouse_url, caplog
) -> None:
    """Redis down: the API still answers, still limits (per process), and says so once."""
    dead = f"redis://:secret@127.0.0.1:{_closed_port()}/0"
    dev = bearer(secret_for(engine, "dev"))
    app = limited_app(warehouse_url, dead)
    with (
        caplog.at_level(logging.WARNING, "timbel_dagster.api.ratelimit"),
        TestClient(app) as client,
    ):
        answers = [client.get("/api/v1/me", headers=dev).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert app.state.rate_limiter.degraded
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "did not answer" in warnings[0] and "secret" not in warnings[0]


@pytest.mark.parametrize("uri", ["memcached://127.0.0.1:11211", "redis", "http://cache:6379"])
def test_a_store_that_is_not_supported_stops_start_up(uri: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(timbel_api_rate_limit_storage=uri)
    message = str(error.value)
    assert "TIMBEL_API_RATE_LIMIT_STORAGE" in message and "redis://HOST:PORT/DB" in message
