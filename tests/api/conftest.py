"""The API in process (starlette's TestClient) over a fresh warehouse, on SQLite and
PostgreSQL like the warehouse tests, with the identity tests' people."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.identity.people import store_people
from timbel_dagster.api.app import create_app
from timbel_dagster.identity import tokens
from timbel_dagster.settings import load_settings
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent


@pytest.fixture
def engine(warehouse_url: str):
    store_people(warehouse_url)
    return get_engine(warehouse_url)


@pytest.fixture
def app(engine, warehouse_url: str, tmp_path) -> FastAPI:
    # Its own TIMBEL_HOME: the default, `.timbel` in the working directory, is the checkout's
    # after `make demo`, whose sample-mode marker would add the sample's alert rules.
    return create_app(
        load_settings(timbel_database_url=warehouse_url, timbel_home=tmp_path / ".timbel")
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def secret_for(engine, user: str, **options) -> str:
    """A new token for `user`, created by themselves; its secret."""
    return tokens.create_token(engine, user, user, **options)["secret"]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def audit_events(engine, action: str) -> list[tuple[str, str | None, dict]]:
    with engine.connect() as connection:
        query = (
            select(AuditEvent.actor, AuditEvent.target, AuditEvent.details)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return [tuple(row) for row in connection.execute(query)]


def long_ago() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
