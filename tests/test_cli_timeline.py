"""The stage timeline of `timbel executions show` (cli/timeline.py): parallel stages overlap,
and each stage's duration reads as people say it, through the shared formatter."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from timbel_dagster.cli.timeline import stage_timeline
from timbel_dagster.warehouse.read.history import add_stage_offsets

START = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)


def _stage(name: str, parent: str | None, offset: int, seconds: float | None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "parent_name": parent,
        "status": "success",
        "started_at": START + dt.timedelta(seconds=offset),
        "duration": seconds,
        "attempt": 1,
    }


def _timeline(total: float, *stages: dict[str, Any]) -> list[str]:
    execution = {"started_at": START, "duration": total, "stages": list(stages)}
    add_stage_offsets(execution)
    return stage_timeline(execution, width=40)


def test_parallel_stages_overlap() -> None:
    lines = _timeline(
        400.0,
        _stage("build", None, 0, 100),
        _stage("unit", "Tests", 100, 200),
        _stage("integration", "Tests", 100, 300),
    )
    bars = [line.split("|")[1] for line in lines]
    assert bars[0].startswith("##########") and bars[1].startswith(" " * 10 + "####")
    assert bars[1].index("#") == bars[2].index("#")  # both branches start together
    assert [line.split("|")[0].strip() for line in lines] == [
        "build",
        "Tests / unit",
        "Tests / integration",
    ]


def test_durations_read_as_people_say_them() -> None:
    lines = _timeline(
        4000.0,
        _stage("checkout", None, 0, 12.2),
        _stage("build", None, 12, 242.7),
        _stage("e2e", None, 255, 3720.4),
        _stage("publish", None, 3976, None),  # still running: no duration yet
    )
    shown = [line.split("|")[2].split() for line in lines]
    assert shown == [
        ["success", "12s"],
        ["success", "4m", "03s"],
        ["success", "1h", "02m"],
        ["success", "-"],
    ]
    assert "242.7" not in "".join(lines)
