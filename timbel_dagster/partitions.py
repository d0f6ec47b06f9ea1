"""Partition definitions shared by assets, jobs and sensors."""

from __future__ import annotations

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
