"""The warehouse as a Dagster resource."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg

from timbel_dagster.settings import get_settings, normalise_database_url
from timbel_dagster.warehouse.engine import check_connection, get_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from timbel_dagster.records.delivery import StoredStage


class WarehouseResource(dg.ConfigurableResource):
    """The Timbel warehouse (SQLite or PostgreSQL) that every asset writes to.

    `database_url` overrides TIMBEL_DATABASE_URL; left unset, the setting (or its SQLite
    default inside TIMBEL_HOME) is read when a run first uses the resource. The code location
    sets it from the settings, as the variable TIMBEL_DATABASE_URL when the URL carries a
    password (left unset when only the `.env` file holds that URL).
    """

    database_url: str | None = None

    def url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return get_settings().database_url

    def engine(self) -> Engine:
        url = self.url()
        check_connection(url)
        return get_engine(url)

    def stored_stages(
        self, source: str, since: dt.datetime, until: dt.datetime
    ) -> list[StoredStage]:
        """The finished stages of `source`'s stored executions in [since, until), read on a
        read-only connection of their own (an ingestion may hold the write transaction):
        what live mode derives deployments from (`CIDerivedHistory`)."""
        # lazy: warehouse.read.queries loads SQLAlchemy; the code location loads without it
        from timbel_dagster.warehouse.read.queries import finished_stages

        with get_engine(self.url(), read_only=True).connect() as connection:
            return finished_stages(connection, source, since, until)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: everything written inside commits together or not at all."""
        with self.engine().begin() as connection:
            yield connection
