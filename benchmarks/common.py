"""Helpers for benchmarks: a scratch PostgreSQL database and the one-line result format."""

from __future__ import annotations

import os
import uuid
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
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from timbel_dagster.warehouse.urls import normalise_database_url

    base = make_url(
        normalise_database_url(os.environ.get("TIMBEL_BENCH_DATABASE_URL", DEFAULT_SERVER))
    )
    name = f"timbel_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from timbel_dagster.warehouse.engine import get_engine

        get_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
