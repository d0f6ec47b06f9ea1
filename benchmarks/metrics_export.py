"""Export of 30 days at a 15 s step for 200 series from a real Prometheus into PostgreSQL.

Figures: queries sent and rejected (target 0 rejected: every query fits the 11,000-point
limit), samples stored per second (target at least 65,000), against the same windows only
fetched and parsed, side by side (what storing costs on top of reading).

The TSDB holds one sample per 4 minutes (loaded with promtool); Prometheus answers a 15 s
step from its 5-minute lookback, so the export reads and stores 172,800 points per series
exactly as from a 15 s scrape, without a 35-million-line import before the run.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report, scratch_postgres

SERIES = 200
DAYS = 30
SCRAPE = 240  # seconds between stored samples
STEP = dt.timedelta(seconds=15)
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
START = END - dt.timedelta(days=DAYS)


def _history(path: Path) -> None:
    first = int(START.timestamp()) - SCRAPE
    stamps = range(first, int(END.timestamp()) + 1, SCRAPE)
    with path.open("w") as out:
        out.write("# TYPE bench_usage gauge\n")
        for series in range(SERIES):
            labels = f'bench_usage{{cluster="c{series % 4}",pod="pod-{series:03d}"}}'
            out.writelines(f"{labels} {(series + t % 3600) / 100!r} {t}\n" for t in stamps)
        out.write("# EOF\n")


def _fetch_only(url: str) -> tuple[float, int]:
    from timbel_dagster.resources.prometheus import PrometheusClient, windows

    client, points = PrometheusClient(url, timeout_seconds=120), 0
    started = time.perf_counter()
    for window_start, window_end in windows(START, END, STEP):
        for item in client.query_window("bench_usage", window_start, window_end, STEP):
            points += len([(float(t), float(v)) for t, v in item["values"]])
    return time.perf_counter() - started, points


def main() -> int:
    from tests.services.prometheus import running_prometheus
    from timbel_dagster.metrics_export import export_range
    from timbel_dagster.resources.prometheus import PrometheusClient
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine

    with tempfile.TemporaryDirectory() as work, running_prometheus(Path(work), _history) as url:
        fetch_seconds, fetched = _fetch_only(url)
        with scratch_postgres() as database:
            migrate.upgrade(database)
            result = export_range(
                PrometheusClient(url, timeout_seconds=120),
                get_engine(database),
                "bench_usage",
                START,
                END,
                STEP,
                echo=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
            )
    rate = result["samples"] / result["seconds"]
    fetch_rate = fetched / fetch_seconds
    report("export_queries", result["queries"], "queries")
    report("export_rejected_queries", result["rejected_queries"], "queries")
    report("export_samples", result["samples"], "samples")
    report(
        "export_samples_stored_per_second",
        rate,
        "samples/s",
        rate / fetch_rate,
        "fetch and parse only",
    )
    report("fetch_only_samples_per_second", fetch_rate, "samples/s")
    print("target: 0 rejected queries; at least 65,000 samples stored per second")
    ok = result["rejected_queries"] == 0 and result["samples"] == SERIES * fetched // SERIES
    return 0 if ok and rate >= 65_000 else 1


if __name__ == "__main__":
    sys.exit(main())
