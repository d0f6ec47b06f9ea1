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

from timbel_dagster.warehouse.schema.cluster import MetricSample, MetricSeries
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.resources.prometheus import PrometheusClient


def series_id(labels: dict[str, str]) -> Any:
    return stable_id("metric_series", json.dumps(sorted(labels.items())))


# Prometheus writes infinities as +Inf/-Inf; PostgreSQL and float() both read these.
_SPECIAL = {"+Inf": "Infinity", "-Inf": "-Infinity"}


def _window_rows(result: list[dict[str, Any]], query: str) -> tuple[list[dict], list[tuple]]:
    """The series of one answer as rows, and its samples as (series id, epoch, value text)
    tuples: values stay the text Prometheus sent, the cheapest form to COPY."""
    series_rows, samples = [], []
    for item in result:
        labels = dict(item.get("metric") or {})
        key = series_id(labels)
        series_rows.append(
            {"id": key, "name": labels.get("__name__", query[:256]), "labels": labels}
        )
        samples += [
            (key, stamp, _SPECIAL.get(value, value)) for stamp, value in item.get("values") or ()
        ]
    return series_rows, samples


def _store_samples_postgres(connection: Any, samples: list[tuple]) -> int:
    """COPY the samples into a staging table as text and merge them in one statement;
    samples already stored are left alone (a past sample does not change)."""
    from sqlalchemy import text

    connection.execute(
        text(
            "CREATE TEMPORARY TABLE IF NOT EXISTS _timbel_samples "
            "(series_id uuid, at_epoch double precision, value double precision) "
            "ON COMMIT DELETE ROWS"
        )
    )
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        with cursor.copy("COPY _timbel_samples (series_id, at_epoch, value) FROM STDIN") as copy:
            chunk = 200_000
            for first in range(0, len(samples), chunk):
                copy.write(
                    "".join(f"{k}\t{t}\t{v}\n" for k, t, v in samples[first : first + chunk])
                )
    finally:
        cursor.close()
    return connection.execute(
        text(
            "INSERT INTO metric_samples (series_id, at, value) "
            "SELECT series_id, to_timestamp(at_epoch), value FROM _timbel_samples "
            "ON CONFLICT (series_id, at) DO NOTHING"
        )
    ).rowcount


def _store_samples(connection: Any, samples: list[tuple]) -> int:
    if connection.dialect.name == "postgresql":
        return _store_samples_postgres(connection, samples)

    rows = [
        {"series_id": k, "at": dt.datetime.fromtimestamp(float(t), dt.UTC), "value": float(v)}
        for k, t, v in samples
    ]
    return bulk_upsert(connection, MetricSample.__table__, rows, ("series_id", "at")).written


def export_range(
    client: PrometheusClient,
    engine: Engine,
    query: str,
    start: dt.datetime,
    end: dt.datetime,
    step: dt.timedelta,
    echo: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Store every sample of `query` over [start, end] at `step`; report what was done.

    The next window is fetched while the current one is stored, so Prometheus and the
    warehouse work at the same time.
    """
    from concurrent.futures import ThreadPoolExecutor

    # lazy: resources.prometheus loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.prometheus import windows

    started = time.perf_counter()
    parts = list(windows(start, end, step))
    seen: set[Any] = set()
    samples = written = 0
    now = dt.datetime.now(dt.UTC)

    def fetch(window: tuple[dt.datetime, dt.datetime]) -> list[dict[str, Any]]:
        return client.query_window(query, window[0], window[1], step)

    with ThreadPoolExecutor(max_workers=1) as prefetch:
        pending = prefetch.submit(fetch, parts[0])
        for number, (window_start, window_end) in enumerate(parts, start=1):
            result = pending.result()
            if number < len(parts):
                pending = prefetch.submit(fetch, parts[number])
            series_rows, window_samples = _window_rows(result, query)
            new_series = [r | {"created_at": now} for r in series_rows if r["id"] not in seen]
            with engine.begin() as connection:
                bulk_upsert(connection, MetricSeries.__table__, new_series, ("id",))
                written += _store_samples(connection, window_samples)
            seen.update(row["id"] for row in new_series)
            samples += len(window_samples)
            elapsed = time.perf_counter() - started
            echo(
                f"[{number}/{len(parts)}] {window_start:%Y-%m-%d %H:%M} .. "
                f"{window_end:%Y-%m-%d %H:%M}: {len(result)} series, "
                f"{len(window_samples):,} samples ({samples / elapsed:,.0f} samples/s so far)"
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
