"""A deprecated route (a probe: no real route is deprecated) carries Deprecation, Sunset and
a successor Link, and is `deprecated: true` in the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pytest
from fastapi import Depends

from tests.api.conftest import bearer, secret_for
from timbel_dagster.api.deps import require
from timbel_dagster.api.versioning import deprecated
from timbel_dagster.identity.principal import Principal

SINCE, SUNSET = dt.date(2027, 1, 1), dt.date(2027, 7, 1)
pytestmark = pytest.mark.parametrize("warehouse_backend", ["sqlite"])  # no SQL involved


@pytest.fixture
def app(app):
    @app.get(
        "/api/v1/old-probe",
        summary="A probe that will go",
        **deprecated(since=SINCE, sunset=SUNSET, successor="/api/v2/new-probe"),
    )
    def old_probe(_who: Annotated[Principal, Depends(require("executions.read"))]) -> dict:
        return {"ok": True}

    return app


def test_a_deprecated_route_announces_its_sunset_and_successor(client, engine) -> None:
    response = client.get("/api/v1/old-probe", headers=bearer(secret_for(engine, "dev")))
    assert response.status_code == 200
    assert response.headers["Deprecation"] == "@1798761600"  # 2027-01-01T00:00:00Z
    assert response.headers["Sunset"] == "Thu, 01 Jul 2027 00:00:00 GMT"
    assert response.headers["Link"] == '</api/v2/new-probe>; rel="successor-version"'


def test_a_route_that_is_not_deprecated_says_nothing(client, engine) -> None:
    response = client.get("/api/v1/me", headers=bearer(secret_for(engine, "dev")))
    assert "Deprecation" not in response.headers and "Sunset" not in response.headers


def test_the_openapi_document_marks_it_deprecated(client) -> None:
    operation = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/old-probe"]["get"]
    assert operation["deprecated"] is True
    assert (operation["x-sunset"], operation["x-successor"]) == ("2027-07-01", "/api/v2/new-probe")


def test_a_sunset_sooner_than_the_policys_notice_is_refused(app) -> None:
    with pytest.raises(ValueError, match="less than 180 days"):
        deprecated(since=SINCE, sunset=SINCE + dt.timedelta(days=30))
