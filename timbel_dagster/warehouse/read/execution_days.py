"""What a range of days holds: the executions stored per UTC start day.

A long-range ingestion records a materialization only for the days that hold executions, so
its cost follows the data, not the number of days in the range.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from timbel_dagster.warehouse.schema.models import PipelineExecution, StageExecution

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class DayCounts:
    """Rows stored for the executions that started on one UTC day."""

    executions: int
    stages: int


def executions_by_day(
    connection: Connection, sources: list[str], since: dt.datetime, until: dt.datetime
) -> dict[dt.date, DayCounts]:
    """The UTC days of [since, until) on which the sources' stored executions started, with
    their execution and stage rows; days without executions are absent. One indexed query
    whose cost grows with the executions of the window."""
    # Stages are counted through the join (the `(execution_id, external_id)` unique index),
    # not in a subquery grouping the whole stage table, which would cost the whole history.
    query = (
        select(PipelineExecution.started_at, func.count(StageExecution.id))
        .outerjoin(StageExecution, StageExecution.execution_id == PipelineExecution.id)
        .where(
            PipelineExecution.source.in_(sources),
            PipelineExecution.started_at >= since,
            PipelineExecution.started_at < until,
        )
        .group_by(PipelineExecution.id, PipelineExecution.started_at)
    )
    executions: Counter[dt.date] = Counter()
    stage_rows: Counter[dt.date] = Counter()
    for started_at, count in connection.execute(query):
        day = started_at.astimezone(dt.UTC).date()
        executions[day] += 1
        stage_rows[day] += count
    return {day: DayCounts(executions[day], stage_rows[day]) for day in sorted(executions)}
