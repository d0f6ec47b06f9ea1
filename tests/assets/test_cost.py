from __future__ import annotations

import pandas as pd
import pytest

from timbel_dagster.assets.cluster.cost import PriceTable, allocate, idle_cost, rightsizing

OPENCOST = PriceTable()


def _usage(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "cluster",
            "namespace",
            "workload",
            "hour",
            "cpu_used",
            "cpu_requested",
            "memory_gib_used",
            "memory_gib_requested",
            "storage_gib",
        ],
    )


def test_opencost_default_prices() -> None:
    assert (OPENCOST.cpu_core_hour, OPENCOST.memory_gib_hour, OPENCOST.storage_gib_hour) == (
        0.031611,
        0.004237,
        0.00005479452,
    )


@pytest.mark.parametrize(
    ("used", "requested", "charged"),
    [(0.5, 2.0, 2.0), (3.0, 2.0, 3.0), (1.0, 0.0, 1.0)],  # max(request, usage)
)
def test_workloads_pay_for_the_larger_of_request_and_usage(
    used: float, requested: float, charged: float
) -> None:
    [row] = allocate(
        _usage([("c", "ns", "w", 0, used, requested, 4.0, 8.0, 10.0)]), OPENCOST
    ).to_dict("records")
    assert row["cpu_charged"] == charged
    assert row["memory_gib_charged"] == 8.0
    assert row["total_cost"] == pytest.approx(
        charged * 0.031611 + 8.0 * 0.004237 + 10.0 * 0.00005479452
    )


def test_idle_cost_is_capacity_not_charged() -> None:
    allocated = allocate(
        _usage(
            [
                ("c", "a", "w1", 0, 1.0, 2.0, 2.0, 4.0, 0.0),
                ("c", "b", "w2", 0, 3.0, 1.0, 1.0, 1.0, 0.0),
            ]
        ),
        OPENCOST,
    )
    capacity = pd.DataFrame(
        [{"cluster": "c", "hour": 0, "cpu_cores": 8.0, "memory_gib": 32.0, "storage_gib": 0.0}]
    )
    [row] = idle_cost(allocated, capacity, OPENCOST).to_dict("records")
    assert row["allocated_cost"] == pytest.approx(5 * 0.031611 + 5 * 0.004237)
    assert row["idle_cost"] == pytest.approx(3 * 0.031611 + 27 * 0.004237)


def test_rightsizing_cuts_requests_to_p95_plus_headroom() -> None:
    hours = [("c", "ns", "api", h, 0.4 + (h % 10) / 100, 4.0, 1.0, 2.0, 0.0) for h in range(100)]
    [row] = rightsizing(_usage(hours), OPENCOST).to_dict("records")
    p95 = pd.Series([0.4 + (h % 10) / 100 for h in range(100)]).quantile(0.95)
    assert row["cpu_p95"] == pytest.approx(p95)
    assert row["cpu_recommended"] == pytest.approx(p95 * 1.15)
    assert row["saving_per_hour"] == pytest.approx(
        (4.0 - p95 * 1.15) * 0.031611 + (2.0 - 1.15) * 0.004237
    )


def test_missing_columns_and_bad_prices_are_named() -> None:
    with pytest.raises(ValueError, match="usage lacks column\\(s\\) storage_gib"):
        allocate(_usage([]).drop(columns=["storage_gib"]), OPENCOST)
    with pytest.raises(ValueError, match="price cpu_core_hour must be a number >= 0"):
        PriceTable(cpu_core_hour=-1.0)
