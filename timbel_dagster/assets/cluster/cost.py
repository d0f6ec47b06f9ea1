"""Cost allocation of cluster usage, priced the way OpenCost does. Plain pandas.

A workload is charged, each hour, for the larger of what it requested and what it used (a
request reserves capacity whether used or not), for CPU cores, memory and storage. Whatever
the nodes of a cluster cost that no workload is charged for is the cluster's idle cost.
Over-provisioning compares requests with the 95th percentile of usage, and a rightsizing
suggestion sets the request to that percentile plus headroom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

USAGE_COLUMNS = (
    "cluster",
    "namespace",
    "workload",
    "hour",
    "cpu_used",
    "cpu_requested",
    "memory_gib_used",
    "memory_gib_requested",
    "storage_gib",
)
CAPACITY_COLUMNS = ("cluster", "hour", "cpu_cores", "memory_gib", "storage_gib")


@dataclass(frozen=True)
class PriceTable:
    """USD per unit-hour. Defaults are OpenCost's (configs/default.json)."""

    cpu_core_hour: float = 0.031611
    memory_gib_hour: float = 0.004237
    storage_gib_hour: float = 0.00005479452

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value >= 0:
                raise ValueError(f"price {name} must be a number >= 0, not {value!r}")


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def allocate(usage: pd.DataFrame, prices: PriceTable) -> pd.DataFrame:
    """Cost per cluster, namespace, workload and hour: max(request, usage) x price."""
    _require(usage, USAGE_COLUMNS, "usage")
    out = usage.copy()
    out["cpu_charged"] = out[["cpu_used", "cpu_requested"]].max(axis=1)
    out["memory_gib_charged"] = out[["memory_gib_used", "memory_gib_requested"]].max(axis=1)
    out["cpu_cost"] = out["cpu_charged"] * prices.cpu_core_hour
    out["memory_cost"] = out["memory_gib_charged"] * prices.memory_gib_hour
    out["storage_cost"] = out["storage_gib"] * prices.storage_gib_hour
    out["total_cost"] = out["cpu_cost"] + out["memory_cost"] + out["storage_cost"]
    return out


def idle_cost(allocated: pd.DataFrame, capacity: pd.DataFrame, prices: PriceTable) -> pd.DataFrame:
    """Per cluster and hour: what the nodes cost, what was charged, and the idle rest."""
    _require(capacity, CAPACITY_COLUMNS, "capacity")
    nodes = capacity.copy()
    nodes["capacity_cost"] = (
        nodes["cpu_cores"] * prices.cpu_core_hour
        + nodes["memory_gib"] * prices.memory_gib_hour
        + nodes["storage_gib"] * prices.storage_gib_hour
    )
    charged = allocated.groupby(["cluster", "hour"], as_index=False)["total_cost"].sum()
    merged = nodes.merge(charged, on=["cluster", "hour"], how="left").fillna({"total_cost": 0.0})
    merged = merged.rename(columns={"total_cost": "allocated_cost"})
    merged["idle_cost"] = (merged["capacity_cost"] - merged["allocated_cost"]).clip(lower=0.0)
    return merged[["cluster", "hour", "capacity_cost", "allocated_cost", "idle_cost"]]


def rightsizing(
    usage: pd.DataFrame, prices: PriceTable, percentile: float = 0.95, headroom: float = 0.15
) -> pd.DataFrame:
    """Per workload: requests against the usage percentile, and the hourly saving of a
    request cut to that percentile plus headroom (only where that is a cut)."""
    _require(usage, USAGE_COLUMNS, "usage")
    keys = ["cluster", "namespace", "workload"]
    grouped = usage.groupby(keys)
    summary = grouped.agg(
        cpu_requested=("cpu_requested", "mean"),
        memory_gib_requested=("memory_gib_requested", "mean"),
        hours=("hour", "nunique"),
    )
    summary["cpu_p95"] = grouped["cpu_used"].quantile(percentile)
    summary["memory_gib_p95"] = grouped["memory_gib_used"].quantile(percentile)
    summary["cpu_recommended"] = summary["cpu_p95"] * (1 + headroom)
    summary["memory_gib_recommended"] = summary["memory_gib_p95"] * (1 + headroom)
    cpu_cut = (summary["cpu_requested"] - summary["cpu_recommended"]).clip(lower=0.0)
    memory_cut = (summary["memory_gib_requested"] - summary["memory_gib_recommended"]).clip(
        lower=0.0
    )
    summary["over_provisioned_cpu"] = cpu_cut
    summary["over_provisioned_memory_gib"] = memory_cut
    summary["saving_per_hour"] = (
        cpu_cut * prices.cpu_core_hour + memory_cut * prices.memory_gib_hour
    )
    return summary.reset_index().sort_values("saving_per_hour", ascending=False, ignore_index=True)


GIB = 1024**3


def workload_usage(pod_rows: list[dict]) -> pd.DataFrame:
    """Pod rows of the warehouse summed per workload and hour, in `USAGE_COLUMNS` units."""
    import pandas as pd

    if not pod_rows:
        return pd.DataFrame(columns=[*USAGE_COLUMNS, "tenant"])
    pods = pd.DataFrame(pod_rows)
    pods["memory_gib_used"] = pods["memory_used_bytes"] / GIB
    pods["memory_gib_requested"] = pods["memory_requested_bytes"] / GIB
    pods["storage_gib"] = pods["storage_bytes"] / GIB
    pods = pods.rename(
        columns={"cpu_used_cores": "cpu_used", "cpu_requested_cores": "cpu_requested"}
    )
    measures = [
        "cpu_used",
        "cpu_requested",
        "memory_gib_used",
        "memory_gib_requested",
        "storage_gib",
    ]
    return pods.groupby(["cluster", "namespace", "workload", "hour"], as_index=False)[
        measures
    ].sum()


def node_capacity(node_rows: list[dict]) -> pd.DataFrame:
    """Node rows summed per cluster and hour, in `CAPACITY_COLUMNS` units."""
    import pandas as pd

    if not node_rows:
        return pd.DataFrame(columns=list(CAPACITY_COLUMNS))
    nodes = pd.DataFrame(node_rows).fillna(
        {"cpu_capacity_cores": 0.0, "memory_capacity_bytes": 0.0, "disk_capacity_bytes": 0.0}
    )
    nodes["cpu_cores"] = nodes["cpu_capacity_cores"]
    nodes["memory_gib"] = nodes["memory_capacity_bytes"] / GIB
    nodes["storage_gib"] = nodes["disk_capacity_bytes"] / GIB
    return nodes.groupby(["cluster", "hour"], as_index=False)[
        ["cpu_cores", "memory_gib", "storage_gib"]
    ].sum()
