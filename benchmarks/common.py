"""Helpers for benchmarks: a scratch PostgreSQL database and the one-line result format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def report(
    name: str, value: float, unit: str, ratio: float | None = None, baseline: str = "baseline"
) -> None:
    """Print one figure as `name: value unit (ratio vs baseline)`."""
    suffix = f" ({ratio:.2f}x vs {baseline})" if ratio is not None else ""
    print(f"{name}: {value:,.2f} {unit}{suffix}", flush=True)


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new database on TIMBEL_BENCH_DATABASE_URL's server, dropped afterwards."""
    from timbel_dagster.warehouse.scratch import scratch_database

    with scratch_database(
        os.environ.get("TIMBEL_BENCH_DATABASE_URL", DEFAULT_SERVER), "bench"
    ) as url:
        yield url
