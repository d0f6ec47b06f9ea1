"""Contract tests: Schemathesis generates requests from the OpenAPI document and runs them
against the app on PostgreSQL, authenticated as an admin.

The document is the snapshot `openapi_v1.json`, which tests/api/test_openapi.py holds equal
to the served one: Schemathesis's lazy fixture loader (`from_fixture`) does not run under
pytest 9.2 (it reads `Function._nodeid`, which pytest removed), and the eager loader needs
the document when the module is collected, before any database exists.

Every operation of the document is a test (a route added later is covered without touching
this file). GET operations get all of Schemathesis's response checks: no 5xx, a documented
status, content type and headers, a body that conforms to the schema. Other methods get
`not_a_server_error` (generated bodies are mostly refused, and a write's answer is checked
by its own tests). Every error, whatever the method, must be a Problem body (RFC 9457).
"""

from __future__ import annotations

import json
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
)

from tests.api.conftest import secret_for
from tests.api.test_executions import _store
from timbel_dagster.api.app import create_app
from timbel_dagster.api.errors import PROBLEM_MEDIA_TYPE
from timbel_dagster.settings import load_settings

# Bounded: the whole file runs in well under a minute on the 2-core machines.
EXAMPLES_PER_OPERATION = 15
PROBLEM_FIELDS = {"type", "title", "status", "detail"}
# Left out, as they check the server's leniency rather than what a client is promised:
# positive_data_acceptance (an opaque `cursor` the API did not give out is a 422, though any
# string fits its schema) and negative_data_rejection (pydantic reads a number where the
# document says date-time as a Unix time: `since=0.5` is accepted).
LENIENCY_CHECKS = [positive_data_acceptance, negative_data_rejection]


@pytest.fixture
def warehouse_backend() -> str:
    return "postgresql"  # the contract is checked on the production database


@pytest.fixture
def contract_app(engine, warehouse_url):
    _store(engine)  # a few executions, so lists answer rows and not only []
    app = create_app(
        load_settings(timbel_database_url=warehouse_url, timbel_api_rate_limit="100000/minute",
                      timbel_api_write_rate_limit="100000/minute",
                      # Configured as deployed: without a key the unsubscribe link is a 503.
                      timbel_secret_key="contract-test-key")
    )  # fmt: skip
    app.state.contract_token = secret_for(engine, "admin")
    CURRENT.app = app
    yield app
    CURRENT.app = None


class CurrentApp:
    """The ASGI app Schemathesis sends to: each test's own app (a fresh warehouse), set by
    the `contract_app` fixture. The schema is loaded at collection, before any app exists,
    and its operations keep the app they were made with, so they get this forwarder."""

    app = None

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


CURRENT = CurrentApp()
schema = schemathesis.openapi.from_dict(
    json.loads(Path(__file__).with_name("openapi_v1.json").read_text(encoding="utf-8"))
)
schema.app = CURRENT


def problem_body(response, method: str, path: str) -> None:
    """An error answer is a Problem: its media type and its four members, status agreeing.
    Pages for people (the unsubscribe link's, outside /api/v1) answer errors as HTML, as
    their OpenAPI entries say; the schema checks hold them to that."""
    if response.status_code < 400 or not path.startswith("/api/v1"):
        return
    where = f"{method} {path} -> {response.status_code}"
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith(PROBLEM_MEDIA_TYPE), f"{where}: {content_type}, no Problem"
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS, f"{where}: Problem without {PROBLEM_FIELDS - set(body)}"
    assert body["status"] == response.status_code, where


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,  # the same requests every run: a failure reproduces
)
def test_every_operation_keeps_its_contract(case, contract_app) -> None:
    headers = {"Authorization": f"Bearer {contract_app.state.contract_token}"}
    if case.method.upper() == "GET":
        response = case.call_and_validate(headers=headers, excluded_checks=LENIENCY_CHECKS)
    else:
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
    problem_body(response, case.method.upper(), case.path)
