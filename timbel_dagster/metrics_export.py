"""`timbel metrics export`: raw Prometheus series into the warehouse, for analysis and
long-term keeping beyond Prometheus' retention.

The range is read window by window, each window sized to Prometheus' 11,000-point limit and
stored in its own transaction as soon as it arrives, so memory stays flat however long the
range, progress shows as it goes, and an interrupted export resumes by running it again
(rows are keyed on series and time: what is stored already is left alone).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.resources.prometheus import PrometheusClient


def series_id(labels: dict[str, str]) -> Any:
    from timbel_dagster.warehouse.ids import stable_id

    return stable_id("metric_series", json.dumps(sorted(labels.items())))


def export_range(
    client: PrometheusClient,
    engine: Engine,
    query: str,
    start: dt.datetime,
    end: dt.datetime,
    step: dt.timedelta,
    echo: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Store every sample of `query` over [start, end] at `step`; report what was done."""
    from timbel_dagster.resources.prometheus import windows
    from timbel_dagster.warehouse.models_cluster import MetricSample, MetricSeries
    from timbel_dagster.warehouse.upsert import bulk_upsert

    started = time.perf_counter()
    parts = list(windows(start, end, step))
    seen: set[Any] = set()
    samples = written = 0
    now = dt.datetime.now(dt.UTC)
    for number, (window_start, window_end) in enumerate(parts, start=1):
        result = client.query_window(query, window_start, window_end, step)
        series_rows, sample_rows = [], []
        for item in result:
            labels = dict(item.get("metric") or {})
            key = series_id(labels)
            if key not in seen:
                series_rows.append(
                    {
                        "id": key,
                        "name": labels.get("__name__", query[:256]),
                        "labels": labels,
                        "created_at": now,
                    }
                )
            sample_rows += [
                {
                    "series_id": key,
                    "at": dt.datetime.fromtimestamp(float(stamp), dt.UTC),
                    "value": float(value),
                }
                for stamp, value in item.get("values") or ()
            ]
        with engine.begin() as connection:
            bulk_upsert(connection, MetricSeries.__table__, series_rows, ("id",))
            stored = bulk_upsert(
                connection, MetricSample.__table__, sample_rows, ("series_id", "at")
            )
        seen.update(row["id"] for row in series_rows)
        samples += len(sample_rows)
        written += stored.written
        elapsed = time.perf_counter() - started
        echo(
            f"[{number}/{len(parts)}] {window_start:%Y-%m-%d %H:%M} .. {window_end:%Y-%m-%d %H:%M}"
            f": {len(result)} series, {len(sample_rows):,} samples "
            f"({samples / elapsed:,.0f} samples/s so far)"
        )
    seconds = time.perf_counter() - started
    return {
        "query": query,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "step_seconds": step.total_seconds(),
        "queries": len(parts),
        "rejected_queries": 0,  # a refused query stops the export with its error
        "series": len(seen),
        "samples": samples,
        "samples_written": written,
        "seconds": round(seconds, 2),
        "samples_per_second": round(samples / seconds) if seconds else None,
    }
