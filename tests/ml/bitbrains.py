"""The Bitbrains "Rnd" trace (GWA-T-12, 500 VMs, July-August 2013) as hourly series.

Test and benchmark code only: the product never reads this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BITBRAINS = DATA / "usage-bitbrains" / "rnd_all500vms_5min_sum_jul_aug.csv"
# OpenCost's default prices (configs/default.json), USD per unit-hour.
CPU_CORE_HOUR = 0.031611
MEMORY_GIB_HOUR = 0.004237


def bitbrains_cost_series(path: Path = BITBRAINS) -> pd.Series:
    """Hourly USD of the trace priced at OpenCost's defaults.

    The 5-minute samples are sums over the VMs of levels, so an hour is their mean. Cores in
    use = cpu_usage_mhz / (cpu_prov_mhz / cores_prov), the MHz of one provisioned core
    (about 2,700); GiB in use = mem_usage_kb / 1024**2 (the trace's KB are KiB). Cost =
    cores x CPU price + GiB x memory price. Hours the trace lacks stay NaN.
    """
    import pandas as pd

    frame = pd.read_csv(path)
    frame.index = pd.to_datetime(frame["ts"], unit="s", utc=True)
    hourly = frame[["cpu_usage_mhz", "cpu_prov_mhz", "cores_prov", "mem_usage_kb"]]
    hourly = hourly.resample("1h").mean()
    cores = hourly["cpu_usage_mhz"] / (hourly["cpu_prov_mhz"] / hourly["cores_prov"])
    gib = hourly["mem_usage_kb"] / 1024**2
    return (cores * CPU_CORE_HOUR + gib * MEMORY_GIB_HOUR).rename("cost_usd")
