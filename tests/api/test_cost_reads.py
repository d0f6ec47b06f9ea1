"""GET /cost: `timbel tenant report --json`, only the caller's tenants (a lead of acme never
sees globex's cost), operations all, and a bad month named as the bad parameter."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from tests.api.conftest import bearer, secret_for
from tests.api.tenant_data import store_tenants
from tests.identity.people import PEOPLE, store_people
from tests.tenants.test_report import cost, usage
from timbel_dagster.tenants.report import monthly_report
from timbel_dagster.warehouse.people.membership import set_tenant_members
from timbel_dagster.warehouse.schema.cluster import CostAllocation, NamespaceUsage

# cost.read is for team leads and operations: a lead in each tenant.
LEADS = [("lead_a", "team_lead", None), ("lead_b", "team_lead", None)]
SEES = {"lead_a": {"acme"}, "lead_b": {"globex"}, "ops": {"acme", "globex", "misc"}}


@pytest.fixture
def seeded(engine, warehouse_url):
    store_tenants(engine, warehouse_url)
    store_people(warehouse_url, [*PEOPLE, *LEADS])
    rows = [cost("sample", "dev-01", t, "api", t, "2026-10-05 10:00", 2.0, 4.0)
            for t in ("acme", "globex", "misc")]  # fmt: skip
    with engine.begin() as connection:
        set_tenant_members(connection, "acme", ["dev_a", "lead_a"])
        set_tenant_members(connection, "globex", ["dev_b", "lead_b"])
        connection.execute(insert(CostAllocation), rows)
        connection.execute(
            insert(NamespaceUsage), [usage("sample", "dev-01", "acme", "acme", "2026-10-05 10:00",
                                           1.0, 2.0)]
        )  # fmt: skip
    return engine


def _get(client, engine, user: str, **params):
    return client.get("/api/v1/cost", params=params, headers=bearer(secret_for(engine, user)))


@pytest.mark.parametrize("user", sorted(SEES))
def test_cost_shows_only_visible_tenants(client, seeded, user) -> None:
    response = _get(client, seeded, user, month="2026-10")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert {item["tenant"] for item in items} == SEES[user]
    with seeded.connect() as connection:
        everything = {(r["tenant"], r["cost_usd"]) for r in monthly_report(connection, "2026-10")}
    assert {(i["tenant"], i["cost_usd"]) for i in items} <= everything


def test_another_tenant_asked_for_by_name_is_refused(client, seeded) -> None:
    assert _get(client, seeded, "lead_a", tenant="globex").status_code == 403
    [row] = _get(client, seeded, "lead_a", tenant="acme").json()["items"]
    assert row["tenant"] == "acme" and row["cpu_core_hours"] == 1.0


def test_developers_may_not_read_cost(client, seeded) -> None:
    assert _get(client, seeded, "dev_a").status_code == 403


@pytest.mark.parametrize("month", ["2026-13", "October"])
def test_a_bad_month_is_422(client, seeded, month) -> None:
    response = _get(client, seeded, "ops", month=month)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "month"]
