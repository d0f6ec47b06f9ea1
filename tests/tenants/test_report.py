"""Monthly usage and cost per tenant from seeded cost allocation and namespace usage rows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import insert

from tests.tenants.conftest import ACTOR
from timbel_dagster.tenants import store
from timbel_dagster.tenants.manifests import tenant_spec
from timbel_dagster.tenants.report import month_range, monthly_report
from timbel_dagster.warehouse.schema.cluster import CostAllocation, NamespaceUsage
from timbel_dagster.warehouse.schema.ids import stable_id

GIB = 2**30


def hour(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def cost(source: str, cluster: str, namespace: str, workload: str, tenant: str, at: str,
         cpu: float, memory: float) -> dict:  # fmt: skip
    return {
        "id": stable_id("cost_allocations", source, cluster, namespace, workload, at),
        "source": source, "cluster": cluster, "hour": hour(at), "namespace": namespace,
        "workload": workload, "tenant": tenant, "cpu_charged_cores": cpu,
        "memory_charged_gib": memory, "storage_gib": 1.0, "cpu_cost": cpu * 0.03,
        "memory_cost": memory * 0.004, "storage_cost": 0.001,
        "total_cost": cpu * 0.03 + memory * 0.004 + 0.001,
    }  # fmt: skip


def usage(source: str, cluster: str, namespace: str, tenant: str, at: str, cpu: float,
          memory_gib: float) -> dict:  # fmt: skip
    return {
        "id": stable_id("namespace_usage", source, cluster, namespace, at),
        "source": source, "cluster": cluster, "hour": hour(at), "namespace": namespace,
        "tenant": tenant, "pods": 3, "cpu_used_cores": cpu, "cpu_used_cores_max": cpu * 2,
        "cpu_requested_cores": cpu * 2, "memory_used_bytes": memory_gib * GIB,
        "memory_requested_bytes": memory_gib * 2 * GIB, "storage_bytes": 0.0,
    }  # fmt: skip


@pytest.fixture
def seeded(engine):
    costs = [
        # October: shop on two clusters and two workloads; the last hour of the month.
        cost("sample", "seoul-dev-01", "shop", "api", "shop", "2026-10-05 10:00", 2.0, 4.0),
        cost("sample", "seoul-dev-01", "shop", "web", "shop", "2026-10-05 10:00", 1.0, 2.0),
        cost("sample", "seoul-stg-01", "shop", "api", "shop", "2026-10-31 23:00", 1.0, 2.0),
        cost("sample", "seoul-dev-01", "search", "idx", "search", "2026-10-05 10:00", 5.0, 8.0),
        # November's first hour belongs to November.
        cost("sample", "seoul-dev-01", "shop", "api", "shop", "2026-11-01 00:00", 3.0, 6.0),
        # Another source is never added to the sample's figures.
        cost("kube-prometheus", "prod-01", "shop", "api", "shop", "2026-10-05 10:00", 5.0, 5.0),
    ]
    usages = [
        usage("sample", "seoul-dev-01", "shop", "shop", "2026-10-05 10:00", 1.5, 3.0),
        usage("sample", "seoul-stg-01", "shop", "shop", "2026-10-31 23:00", 0.5, 1.0),
        usage("sample", "seoul-dev-01", "search", "search", "2026-10-05 10:00", 3.0, 6.0),
        usage("sample", "seoul-dev-01", "shop", "shop", "2026-11-01 00:00", 2.5, 4.0),
        # Usage without any cost stored still shows.
        usage("sample", "seoul-dev-01", "misc", "misc", "2026-11-01 00:00", 0.25, 0.5),
    ]
    with engine.begin() as connection:
        connection.execute(insert(CostAllocation), costs)
        connection.execute(insert(NamespaceUsage), usages)
    store.record_provisioned(
        engine, tenant_spec("shop", "8", "16Gi", ["soyeon.lee"]), ["seoul-dev-01"], ACTOR, {}
    )
    return engine


def test_an_empty_warehouse_gives_an_empty_report(engine) -> None:
    with engine.connect() as connection:
        assert monthly_report(connection) == []
        assert monthly_report(connection, "2026-10") == []


def test_the_report_of_one_month(seeded) -> None:
    with seeded.connect() as connection:
        rows = monthly_report(connection, "2026-10", source="sample")
    assert [(r["tenant"], r["managed"]) for r in rows] == [("search", False), ("shop", True)]
    search, shop = rows
    assert search["cost_usd"] == pytest.approx(5 * 0.03 + 8 * 0.004 + 0.001)
    assert shop == {
        "month": "2026-10",
        "tenant": "shop",
        "source": "sample",
        "managed": True,
        "cost_usd": pytest.approx(round(4 * 0.03 + 8 * 0.004 + 3 * 0.001, 4)),
        "cpu_cost_usd": pytest.approx(0.12),
        "memory_cost_usd": pytest.approx(0.032),
        "storage_cost_usd": pytest.approx(0.003),
        "cpu_core_hours": pytest.approx(2.0),
        "memory_gib_hours": pytest.approx(4.0),
        "cpu_charged_core_hours": pytest.approx(4.0),
        "memory_charged_gib_hours": pytest.approx(8.0),
    }


def test_every_month_and_source(seeded) -> None:
    with seeded.connect() as connection:
        rows = monthly_report(connection)
    keys = [(r["month"], r["tenant"], r["source"]) for r in rows]
    assert keys == [
        ("2026-10", "search", "sample"),  # the most expensive of October first
        ("2026-10", "shop", "kube-prometheus"),
        ("2026-10", "shop", "sample"),
        ("2026-11", "shop", "sample"),
        ("2026-11", "misc", "sample"),
    ]
    november = {r["tenant"]: r for r in rows if r["month"] == "2026-11"}
    assert november["shop"]["cpu_core_hours"] == pytest.approx(2.5)
    assert november["misc"]["cost_usd"] == 0.0 and november["misc"]["cpu_core_hours"] == 0.25


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [("2026-10", "2026-10-01", "2026-11-01"), ("2026-12", "2026-12-01", "2027-01-01")],
)
def test_month_range(month: str, start: str, end: str) -> None:
    assert month_range(month) == (hour(start), hour(end))


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "October", "2026-10-01", ""])
def test_a_bad_month_is_refused(month: str) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"month must be YYYY-MM, like 2026-10, not {month!r}")
    ):
        month_range(month)
