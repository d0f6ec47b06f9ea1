"""The OpenAPI document: snapshot-tested, so a change to the API's contract shows up as a
readable diff in review, and every route documented (summary, example, error responses).

After an intended change, regenerate the snapshot and commit it with the change:
    TIMBEL_UPDATE_OPENAPI_SNAPSHOT=1 .venv/bin/pytest -q tests/api/test_openapi.py

Beside the snapshot, `openapi_v1_released.json` is the contract v1 was released with: it
only grows (copy the snapshot over it at a release), and the served document must not break
it (tests/api/openapi_diff.py), however the snapshot was regenerated
(docs/api-versioning.md).
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from tests.api.openapi_diff import breaking_changes

SNAPSHOT = Path(__file__).with_name("openapi_v1.json")
RELEASED = Path(__file__).with_name("openapi_v1_released.json")
UPDATE = "TIMBEL_UPDATE_OPENAPI_SNAPSHOT"

pytestmark = pytest.mark.parametrize("warehouse_backend", ["sqlite"])  # one document


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def _text(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_document_matches_the_snapshot(document) -> None:
    if os.environ.get(UPDATE):
        SNAPSHOT.write_text(_text(document))
    expected = SNAPSHOT.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            _text(document).splitlines(keepends=True),
            "tests/api/openapi_v1.json (snapshot)",
            "/api/v1/openapi.json (served)",
        )
    )
    assert not diff, f"the OpenAPI document changed; if intended, run {UPDATE}=1 pytest:\n{diff}"


def test_the_document_is_valid_openapi_3_1(document) -> None:
    validate(document)  # raises OpenAPIValidationError naming the bad part


def test_the_document_does_not_break_the_released_contract(document) -> None:
    broken = breaking_changes(json.loads(RELEASED.read_text()), document)
    assert not broken, (
        "breaking changes against the released v1 contract (tests/api/openapi_v1_released.json);"
        " v1 only grows: add a new route or field instead, and deprecate the old one "
        "(docs/api-versioning.md):\n" + "\n".join(broken)
    )


def test_the_document_names_the_api_and_its_version(document) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "Timbel API" and document["info"]["version"]
    assert "timbel token create" in document["info"]["description"]
    scheme = document["components"]["securitySchemes"]["token"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "timbel token create" in scheme["description"]


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _schema(document: dict, ref: str) -> dict:
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


# Outside /api/v1 and without a token: the e-mail's unsubscribe link (its signed token is
# the authority), answered in HTML for the person who clicked it.
PUBLIC = {"GET /unsubscribe", "POST /unsubscribe"}


def test_every_route_is_under_v1_with_a_summary_an_example_and_its_errors(document) -> None:
    operations = dict(_operations(document))
    assert {
        "GET /api/v1/me",
        "GET /api/v1/executions",
        "GET /api/v1/tenants",
        "POST /api/v1/deployments/requests",
        "GET /api/v1/deployments/requests",
        "GET /api/v1/deployments/requests/{number}",
        "GET /api/v1/deployments/requests/{number}/risk",
        "POST /api/v1/deployments/requests/{number}/approve",
        "POST /api/v1/deployments/requests/{number}/reject",
        "POST /api/v1/deployments/requests/{number}/fast-track",
        "POST /api/v1/deployments/requests/{number}/review",
        "POST /api/v1/rollbacks",
        "POST /api/v1/tenants",
        "DELETE /api/v1/tenants/{name}",
        "GET /api/v1/executions/{id}", "GET /api/v1/executions/{id}/stages",
        "GET /api/v1/executions/{id}/log", "GET /api/v1/logs/search", "GET /api/v1/pipelines",
        "GET /api/v1/pipelines/{id}/stats", "GET /api/v1/metrics/dora", "GET /api/v1/cost",
        "GET /api/v1/security/findings", "GET /api/v1/security/gate", "GET /api/v1/rollbacks",
        "GET /api/v1/audit/events",
    } <= set(operations)  # fmt: skip
    assert {name for name in operations if " /api/v1/" not in name} == PUBLIC
    assert {name for name, op in operations.items() if "webhooks" in op["tags"]} == {
        "POST /api/v1/webhooks/gitlab",
        "POST /api/v1/webhooks/jenkins/{secret}",
        "POST /api/v1/webhooks/registry",
        "POST /api/v1/webhooks/slack/interactions",
    }
    for name, operation in operations.items():
        if name in PUBLIC:
            continue
        assert operation["summary"], name
        # Webhooks are authenticated by each sender's own secret, never by a bearer token.
        webhook = "webhooks" in operation["tags"]
        assert operation.get("security") == (None if webhook else [{"token": []}]), name
        success = next(s for s in operation["responses"] if s.startswith("2"))
        if success != "204":
            ok = operation["responses"][success]["content"]["application/json"]["schema"]
            assert _schema(document, ok["$ref"]).get("examples"), f"{name}: no example"
        assert "401" in operation["responses"], f"{name}: 401 not documented"
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                problem = response["content"]["application/problem+json"]["schema"]
                assert problem == {"$ref": "#/components/schemas/Problem"}, (name, status)
    assert {"401", "403", "422"} <= set(operations["GET /api/v1/executions"]["responses"])


def test_the_unsubscribe_link_needs_no_token_and_answers_html(document) -> None:
    operations = dict(_operations(document))
    for name in PUBLIC:
        operation = operations[name]
        assert operation["summary"] and "security" not in operation, name
        assert {"200", "400"} <= set(operation["responses"]), name
        assert "text/html" in operation["responses"]["400"]["content"], name
    form = operations["POST /unsubscribe"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form


def test_swagger_ui_is_served_at_api_docs(client) -> None:
    response = client.get("/api/docs")
    assert response.status_code == 200 and "/api/v1/openapi.json" in response.text
