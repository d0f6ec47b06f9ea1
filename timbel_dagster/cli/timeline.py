"""The stage timeline `timbel executions show` prints: a text Gantt chart of an execution's
stages, where parallel stages overlap, each with its duration as people read it (`4m 03s`)."""

from __future__ import annotations

from typing import Any

from timbel_dagster.cli.tables import duration

BAR_WIDTH = 40
NAME_WIDTH = 32


def _bar(offset: float | None, seconds: float, total: float, width: int) -> str:
    if offset is None or total <= 0:
        return " " * width
    left = min(width - 1, max(0, int(offset / total * width)))
    size = max(1, int(seconds / total * width))
    return (" " * left + "#" * size)[:width].ljust(width)


def stage_timeline(execution: dict[str, Any], width: int = BAR_WIDTH) -> list[str]:
    """One line per stage: its name, its bar on the execution's time axis, its status and
    duration, the attempt when retried and the error when it has one. The stages carry
    `offset_seconds` (`warehouse.read.history.add_stage_offsets`)."""
    total = execution.get("duration") or 0.0
    lines = []
    for stage in execution["stages"]:
        seconds = stage.get("duration") or 0.0
        bar = _bar(stage.get("offset_seconds"), seconds, total, width)
        name = (
            f"{stage['parent_name']} / {stage['name']}" if stage["parent_name"] else stage["name"]
        )
        retry = f" (attempt {stage['attempt']})" if stage["attempt"] > 1 else ""
        error = f"  {stage['error_message']}" if stage.get("error_message") else ""
        lines.append(
            f"  {name[:NAME_WIDTH]:<{NAME_WIDTH}} |{bar}| {stage['status']:<8} "
            f"{duration(stage.get('duration')):>7}{retry}{error}"
        )
    return lines
