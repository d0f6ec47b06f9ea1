"""Partition definitions shared by assets, jobs and sensors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dagster as dg

CLUSTERS = dg.DynamicPartitionsDefinition(name="clusters")

# The day history starts when TIMBEL_HISTORY_START is unset: early enough for any real server.
DEFAULT_HISTORY_START = dt.date(2010, 1, 1)


def daily(start: dt.date) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from `start`; `end_offset=1` includes today, whose builds
    are still arriving."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), end_offset=1)


def hourly(start: dt.date) -> dg.HourlyPartitionsDefinition:
    """One partition per completed UTC hour from `start`."""
    return dg.HourlyPartitionsDefinition(start_date=f"{start.isoformat()}-00:00")


def cluster_hourly(start: dt.date) -> dg.MultiPartitionsDefinition:
    """One partition per cluster and completed UTC hour from `start`. Clusters are dynamic
    partitions that the discovery sensor keeps equal to the configured clusters."""
    return dg.MultiPartitionsDefinition({"cluster": CLUSTERS, "hour": hourly(start)})


# What the asset modules declare: "by day" and "by cluster and hour", from the default start.
# Where history starts is a setting, and nothing reads settings at import time, so the code
# location rebinds these to TIMBEL_HISTORY_START when it loads (`with_history_start`, called
# from the `@dg.definitions` function in definitions.py; in sample mode, to the sample's first
# day), and says in each asset's description why most of those partitions stay empty.
DAILY = daily(DEFAULT_HISTORY_START)
HOURLY = hourly(DEFAULT_HISTORY_START)
CLUSTER_HOURLY = cluster_hourly(DEFAULT_HISTORY_START)


# What the asset page says under the partitions it shows as missing: most of them always are,
# and that is not a failure.
EMPTY_PARTITIONS = {
    "daily": (
        " Partitions start on {start} (TIMBEL_HISTORY_START; in sample mode, the sample's first "
        "day); a day before the first ingested execution, or a day without any, stays empty "
        "(shown as missing): that is not a failure."
    ),
    "cluster_hourly": (
        " Partitions are every cluster and hour from {start} (TIMBEL_HISTORY_START; in sample "
        "mode, the sample's first day); only the hours collected (the hourly schedule, "
        "`timbel metrics collect`, the demo's last 24 hours) are materialized, the others stay "
        "empty (shown as missing): that is not a failure."
    ),
}


def with_history_start(
    assets: Sequence[dg.AssetsDefinition], start: dt.date
) -> list[dg.AssetsDefinition]:
    """`assets`, their daily and cluster-hourly partitions starting on `start`, and their
    descriptions saying why most of those partitions are empty."""
    rebound = {
        DAILY: (daily(start), "daily"),
        CLUSTER_HOURLY: (cluster_hourly(start), "cluster_hourly"),
    }

    def rebind(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.partitions_def not in rebound:
            return spec
        partitions, kind = rebound[spec.partitions_def]
        note = EMPTY_PARTITIONS[kind].format(start=start.isoformat())
        return spec.replace_attributes(
            partitions_def=partitions, description=(spec.description or "") + note
        )

    return [
        asset.map_asset_specs(rebind) if asset.partitions_def in rebound else asset
        for asset in assets
    ]


class HistoryStartError(ValueError):
    """Data before TIMBEL_HISTORY_START was asked for; the message is one line."""


def check_history_start(first: dt.date, start: dt.date) -> None:
    """Refuse a range that begins before the partitions do, naming the setting."""
    if first < start:
        raise HistoryStartError(
            f"{first.isoformat()} is before TIMBEL_HISTORY_START ({start.isoformat()}): "
            "set TIMBEL_HISTORY_START to that day or earlier to ingest older history"
        )


# Time-partitioned ingestion reads a whole partition range in one run (a backfill of 90 days
# is one run, not 90).
SINGLE_RUN = dg.BackfillPolicy.single_run()

# Tags that make one run cover a range of partitions.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


HOUR_FORMAT = "%Y-%m-%d-%H:%M"


def hour_key(hour: dt.datetime) -> str:
    return hour.astimezone(dt.UTC).strftime(HOUR_FORMAT)


def cluster_hours(partition_keys: list[str]) -> dict[str, list[dt.datetime]]:
    """The hours (UTC starts, ascending) a run covers, per cluster, from its partition keys
    (`cluster|hour` multi-partition keys: one for a single partition, many for a range)."""
    found: dict[str, set[dt.datetime]] = {}
    for key in partition_keys:
        by_dimension = getattr(key, "keys_by_dimension", None) or dict(
            zip(("cluster", "hour"), str(key).split("|"), strict=True)
        )
        hour = dt.datetime.strptime(by_dimension["hour"], HOUR_FORMAT).replace(tzinfo=dt.UTC)
        found.setdefault(by_dimension["cluster"], set()).add(hour)
    return {cluster: sorted(hours) for cluster, hours in sorted(found.items())}
