"""Throw-away PostgreSQL databases, for tests and benchmarks that must not collide."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from timbel_dagster.settings import normalise_database_url
from timbel_dagster.warehouse.engine import get_engine


@contextmanager
def scratch_database(server_url: str, purpose: str) -> Iterator[str]:
    """Create a uniquely named database on `server_url`'s server; drop it on exit.

    Raises:
        sqlalchemy.exc.OperationalError: the server cannot be reached.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(normalise_database_url(server_url))
    name = f"timbel_{purpose}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            get_engine(url).dispose()
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
