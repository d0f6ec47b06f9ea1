"""GET /api/v1/tenants and /tenants/{name}: a member sees only their tenants, operations
sees all; another tenant's detail is a 403 (audited), an unknown one a 404."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.api.conftest import audit_events, bearer, secret_for
from timbel_dagster.warehouse.people.membership import set_tenant_members
from timbel_dagster.warehouse.schema.deploy import Tenant
from timbel_dagster.warehouse.schema.ids import stable_id

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
TENANTS = {"acme": ["dev", "viewer"], "globex": ["lead"]}


@pytest.fixture
def tenants(engine) -> None:
    with engine.begin() as connection:
        for name, users in TENANTS.items():
            connection.execute(
                Tenant.__table__.insert().values(
                    id=stable_id("tenants", name), name=name, cpu_cores=4.0,
                    memory_bytes=8.0 * 2**30, clusters=["seoul-dev-01"], status="provisioned",
                    created_by="ops", created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
            set_tenant_members(connection, name, users)


@pytest.mark.parametrize(
    ("user", "expected"),
    [("viewer", ["acme"]), ("lead", ["globex"]), ("ops", ["acme", "globex"]),
     ("admin", ["acme", "globex"])],
)  # fmt: skip
def test_list_is_scoped_to_the_callers_tenants(client, engine, tenants, user, expected) -> None:
    response = client.get("/api/v1/tenants", headers=bearer(secret_for(engine, user)))
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [t["name"] for t in items] == expected
    acme = [t for t in items if t["name"] == "acme"]
    if acme:
        assert acme[0]["users"] == ["dev", "viewer"]
        assert acme[0]["clusters"] == ["seoul-dev-01"] and acme[0]["cpu_cores"] == 4.0


def test_member_reads_own_tenant(client, engine, tenants) -> None:
    response = client.get("/api/v1/tenants/acme", headers=bearer(secret_for(engine, "dev")))
    assert response.status_code == 200, response.text
    assert response.json()["users"] == ["dev", "viewer"]


def test_other_tenant_is_403_and_audited(client, engine, tenants) -> None:
    response = client.get("/api/v1/tenants/globex", headers=bearer(secret_for(engine, "dev")))
    assert response.status_code == 403, response.text
    assert "not a member of tenant globex" in response.json()["detail"]
    [(actor, target, details)] = audit_events(engine, "api.refused")
    assert (actor, target) == ("dev", "GET /api/v1/tenants/globex")
    assert details["action"] == "tenants.read"


def test_operations_reads_any_tenant(client, engine, tenants) -> None:
    response = client.get("/api/v1/tenants/globex", headers=bearer(secret_for(engine, "ops")))
    assert response.status_code == 200 and response.json()["users"] == ["lead"]


def test_unknown_tenant_is_404(client, engine, tenants) -> None:
    response = client.get("/api/v1/tenants/initech", headers=bearer(secret_for(engine, "ops")))
    assert response.status_code == 404
    assert response.json()["detail"] == "no tenant named 'initech'"


def test_without_token_is_401(client, tenants) -> None:
    assert client.get("/api/v1/tenants").status_code == 401
