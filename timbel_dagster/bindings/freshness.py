"""The Dagster instance as the `ingestion_stale` fact's clock: when each ingestion asset last
materialized, read the way Dagster's freshness daemon reads it for the UI."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import dagster as dg

from timbel_dagster.settings.freshness import Windows


class InstanceClock:
    """Latest materializations from `instance`; the watched assets are `windows`' (the
    ingestion assets' windows from the settings, as the definitions' freshness policies)."""

    def __init__(self, instance: dg.DagsterInstance, windows: Mapping[str, Windows]) -> None:
        self.instance, self._windows = instance, dict(windows)

    def windows(self) -> Mapping[str, Windows]:
        return self._windows

    def last_materialized(self, assets: Sequence[str]) -> dict[str, dt.datetime | None]:
        # The asset records' last materialization (of any partition), in one query: what the
        # freshness daemon's time-window evaluator compares with the policy's windows.
        records = self.instance.get_asset_records(
            [dg.AssetKey.from_user_string(asset) for asset in assets]
        )
        found: dict[str, dt.datetime | None] = dict.fromkeys(assets)
        for record in records:
            event = record.asset_entry.last_materialization
            if event is not None:
                found[record.asset_entry.asset_key.to_user_string()] = dt.datetime.fromtimestamp(
                    event.timestamp, dt.UTC
                )
        return found
