"""GET /slos: `timbel slo status --json`'s rows, limited to the caller's tenants; another
tenant's service refused."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.api.conftest import bearer, secret_for
from tests.api.tenant_data import store_tenants
from timbel_dagster.slo.counts import Counts
from timbel_dagster.slo.spec import parse_slos
from timbel_dagster.slo.status import as_dict, latest, status_of, store, windows_of

AT = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def _status(service: str, bad: int, at: dt.datetime):
    [slo] = parse_slos(
        f"slos:\n  - service: {service}\n    name: availability\n    objective: 99\n"
        "    sli: {kind: pipeline_success}\n",
        "s.yaml",
    )
    counts = dict.fromkeys(windows_of(slo), Counts(1000 - bad, 1000))
    return status_of(slo, counts, at)


@pytest.fixture
def statuses(engine, warehouse_url) -> None:
    store_tenants(engine, warehouse_url)
    with engine.begin() as connection:
        store(connection, [_status(s, 5, AT - dt.timedelta(minutes=5)) for s in ("cart", "wiki")])
        # The latest status of each: cart burns 2x, ledger 30x (a page), wiki 0.5x.
        store(connection, [_status("cart", 20, AT), _status("ledger", 300, AT)])
        store(connection, [_status("wiki", 5, AT)])


def _get(client, engine, user: str, **params):
    return client.get("/api/v1/slos", params=params,
                      headers=bearer(secret_for(engine, user)))  # fmt: skip


def _keys(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [f"{r['service']}/{r['slo']}" for r in response.json()["items"]]


def test_operations_see_every_slo_as_the_cli_prints_it(client, engine, statuses) -> None:
    response = _get(client, engine, "ops")
    assert _keys(response) == ["cart/availability", "ledger/availability", "wiki/availability"]
    with engine.connect() as connection:
        expected = [as_dict(s) for s in latest(connection)]
    assert response.json()["items"] == expected
    ledger = response.json()["items"][1]
    assert ledger["burn_rates"]["5m"] == pytest.approx(30.0)
    assert ledger["alert"] == "page"
    assert ledger["evaluated_at"] == AT.isoformat()


def test_a_developer_sees_their_tenants_services_and_those_in_none(
    client, engine, statuses
) -> None:
    assert _keys(_get(client, engine, "dev_a")) == ["cart/availability", "wiki/availability"]
    assert _keys(_get(client, engine, "dev_b")) == ["ledger/availability", "wiki/availability"]


def test_another_tenants_service_is_refused(client, engine, statuses) -> None:
    assert _get(client, engine, "dev_a", service="ledger").status_code == 403
    assert _keys(_get(client, engine, "dev_b", service="ledger")) == ["ledger/availability"]


def test_no_status_stored_is_an_empty_list(client, engine, warehouse_url) -> None:
    store_tenants(engine, warehouse_url)
    assert _keys(_get(client, engine, "ops")) == []
