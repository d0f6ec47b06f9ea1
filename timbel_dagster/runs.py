"""In-process Dagster runs for the CLI (`timbel demo`, `timbel ingest`).

One-shot commands materialize in process (DESIGN §5: a fresh process per step costs seconds
here) but in the same Dagster instance the UI shows, so their runs and logs are there later.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from timbel_dagster.warehouse.audit.anchors import RecordedAnchor, parse_anchor

AUDIT_REPORT_KEY = ("audit", "audit_report")

_INSTANCE_YAML = """\
# Dagster instance of the `timbel` command and `make dev` (SQLite storage in this folder).
# For production, see dagster.yaml.example at the top of the repository.
telemetry:
  enabled: false
"""

# The run's full event log is in the Dagster UI. On the terminal Dagster's console logger
# stays silent: a failed step would print Dagster's own lines and a long stack trace before
# the one line that matters. The command prints that line itself (cli.common.friendly_errors)
# and the warnings Timbel's code logged in the run (`run_warnings`).
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def open_instance(home: Path) -> Any:
    """The Dagster instance in `home`, created (with a dagster.yaml) if it does not exist."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_INSTANCE_YAML)
    return dg.DagsterInstance.from_config(str(home))


def existing_instance(home: Path) -> Any | None:
    """The Dagster instance in `home` if one was made there, else None (never creates one):
    `timbel alerts evaluate` reads the materializations the UI shows from it."""
    if not (home / "dagster.yaml").exists():
        return None
    import dagster as dg

    return dg.DagsterInstance.from_config(str(home))


def report_anchor(home: Path) -> RecordedAnchor | None:
    """The head anchor of the newest audit report in the Dagster instance in `home` (its
    event log is outside the warehouse); None without an instance or a report.

    Raises:
        AnchorError: the report's `head_anchor` is not ID:HASH.
    """
    if not (home / "dagster.yaml").exists():
        return None  # never create an instance only to read it
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(list(AUDIT_REPORT_KEY)))
    if event is None or event.asset_materialization is None:
        return None
    materialization = event.asset_materialization
    value = materialization.metadata.get("head_anchor")
    text = value.value if value is not None else "none"
    if not isinstance(text, str) or text == "none":
        return None
    week = materialization.partition or "unpartitioned"
    event_id, event_hash = parse_anchor(text, f"the audit report of {week}'s head_anchor")
    recorded_at = dt.datetime.fromtimestamp(event.timestamp, dt.UTC)
    return RecordedAnchor(event_id, event_hash, recorded_at, f"audit report of week {week}")


def materialization_metadata(result: Any, key: str) -> dict[str, Any]:
    """The metadata values of the last materialization of `key` (as `a/b`) in a run."""
    found: dict[str, Any] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == key:
            found = {name: value.value for name, value in materialization.metadata.items()}
    return found


def rows_written(result: Any) -> dict[str, int]:
    """Rows each asset of the run wrote (a range run reports the same figure on each day)."""
    counts = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        value = materialization.metadata.get("rows_written")
        if value is not None:
            counts[materialization.asset_key.to_user_string()] = int(value.value)
    return counts


def run_warnings(instance: Any, run_id: str) -> list[str]:
    """The warnings and errors Timbel's own code logged in a run (`context.log.warning`),
    without Dagster's framework events, oldest first."""
    import logging

    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is None and entry.level >= logging.WARNING
    ]
