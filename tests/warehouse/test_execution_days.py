"""`executions_by_day`: the days of a window that hold stored executions, with their rows."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from timbel_dagster.assets.ingestion import ingest_ci
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.read.execution_days import DayCounts, executions_by_day


def test_days_holding_executions_with_their_rows(warehouse_url: str, sample_source) -> None:
    since, until = sample_source.window
    with get_engine(warehouse_url).begin() as connection:
        ingest_ci(connection, sample_source, since, until)
    inside = [
        e
        for e in sample_source.history.executions
        if e.started_at is not None and since <= e.started_at < until
    ]
    executions = Counter(e.started_at.astimezone(dt.UTC).date() for e in inside)
    stages = Counter()
    for e in inside:
        stages[e.started_at.astimezone(dt.UTC).date()] += len(e.stages)
    # a window three times longer than the data: the empty days are absent
    wide_since = since - (until - since) * 2
    with get_engine(warehouse_url).connect() as connection:
        found = executions_by_day(connection, [sample_source.name], wide_since, until)
        other_source = executions_by_day(connection, ["jenkins"], wide_since, until)
    assert found == {day: DayCounts(executions[day], stages[day]) for day in sorted(executions)}
    assert all(counts.executions > 0 for counts in found.values())
    assert other_source == {}
