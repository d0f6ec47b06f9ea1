"""The `ingestion_stale` fact: ingestion assets past a freshness window, from the Dagster
instance rather than the warehouse.

Staleness is measured as Dagster's freshness daemon measures it for the UI: seconds since the
asset's latest materialization event (of any partition), against the windows of
settings/freshness.py that the definitions put on the assets as freshness policies. A
materialization is only recorded when the step succeeded, so a failing run keeps the asset
stale. An asset never materialized is UNKNOWN in the UI and is not reported here either.

The reader of the instance is passed in (`bindings/freshness.py`), so this stays plain
Python and its tests choose the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from timbel_dagster.settings.freshness import Windows

Observation = tuple[dict[str, str], float]
WINDOWS = ("fail", "warn")


class NoInstanceError(RuntimeError):
    """A fact that reads the Dagster instance was evaluated without one."""


class MaterializationClock(Protocol):
    """What the fact reads: the watched assets and when each last materialized."""

    def windows(self) -> Mapping[str, Windows]:
        """Each watched asset (`domain/table`) and its windows."""
        ...

    def last_materialized(self, assets: Sequence[str]) -> Mapping[str, dt.datetime | None]:
        """When each asset last materialized (UTC), None if never."""
        ...


def _shown(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


def ingestion_stale(
    clock: MaterializationClock | None, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Per watched asset past its `window` (param, `fail` or `warn`; default `fail`) at `now`:
    the seconds since its last materialization, labelled with the asset and the window."""
    if clock is None:
        raise NoInstanceError(
            "ingestion_stale reads the Dagster instance and there is none here: "
            "alert_rule_sensor and alerts/alert_events evaluate it, and `timbel alerts evaluate` "
            "where DAGSTER_HOME (or TIMBEL_HOME/dagster) holds one"
        )
    which = str(params.get("window", "fail"))
    if which not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {which!r}")
    windows = clock.windows()
    last = clock.last_materialized(sorted(windows))
    found = []
    for asset in sorted(windows):
        at = last.get(asset)
        if at is None:
            continue
        limit = getattr(windows[asset], which)
        age = now - at
        if age >= limit:
            labels = {"asset": asset, f"{which}_window": _shown(limit)}
            found.append((labels, age.total_seconds()))
    return found


# Facts that read the Dagster instance, by name (notify/facts.py lists them with the warehouse
# facts, so rules name them the same way).
INSTANCE_FACTS = {"ingestion_stale": ingestion_stale}
