"""Partition definitions shared by assets, jobs and sensors."""

from __future__ import annotations

import datetime as dt

import dagster as dg

# One partition per UTC day. `end_offset=1` includes today, whose builds are still arriving;
# history before the start date is out of scope for time-partitioned ingestion.
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)

# Time-partitioned ingestion reads a whole partition range in one run (a backfill of 90 days
# is one run, not 90).
SINGLE_RUN = dg.BackfillPolicy.single_run()

# Tags that make one run cover a range of partitions.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


# Cluster metrics: one partition per cluster and completed UTC hour. Clusters are dynamic
# partitions that the discovery sensor keeps equal to the configured clusters.
HOURLY = dg.HourlyPartitionsDefinition(start_date="2024-01-01-00:00")
CLUSTERS = dg.DynamicPartitionsDefinition(name="clusters")
CLUSTER_HOURLY = dg.MultiPartitionsDefinition({"cluster": CLUSTERS, "hour": HOURLY})
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
