"""Errors of routes that take a body (none of the skeleton's routes does yet, so a probe
route stands in): a body that is not JSON is a 400 Problem, a bad field a 422 naming it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.api.conftest import bearer, secret_for


class Reason(BaseModel):
    reason: str


@pytest.fixture
def probe(app) -> str:
    @app.post("/api/v1/probe")
    def probe(body: Reason) -> dict:
        return {"reason": body.reason}

    return "/api/v1/probe"


def test_a_body_that_is_not_json_is_a_400_problem(client, probe) -> None:
    response = client.post(
        probe, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the body is not valid JSON"


def test_a_missing_body_field_is_a_422_with_its_path(client, probe) -> None:
    response = client.post(probe, json={"why": "no"})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "reason"]]
    assert client.post(probe, json={"reason": "ok"}).json() == {"reason": "ok"}


def test_a_valid_token_does_not_change_an_unknown_paths_404(client, engine) -> None:
    response = client.get("/api/v1/nothing", headers=bearer(secret_for(engine, "dev")))
    assert response.status_code == 404 and response.json()["status"] == 404


def test_a_nul_character_in_a_parameter_is_a_422_naming_it(client, engine) -> None:
    # PostgreSQL text cannot hold NUL: it was a 500 (found by the contract test).
    secret = secret_for(engine, "admin")
    response = client.get("/api/v1/executions?pipeline=a%00b", headers=bearer(secret))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "pipeline"]
