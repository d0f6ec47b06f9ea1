"""`timbel sample`: write the whole sample organisation through the ingestion path.

One of the commands the CLI runs in process (the layer below `cli`): it writes to storage, so
it does not live with the sample's clients in `resources/sample/` (clients never import
storage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from timbel_dagster.assets.ingestion import ingest_ci, ingest_delivery_history, ingest_directory
from timbel_dagster.warehouse.store.ingest import Results

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from timbel_dagster.resources.sample.source import SampleSource


def load_sample(engine: Engine, source: SampleSource, actor: str) -> Results:
    """Store the sample organisation in one transaction, with the audit event that says so."""
    from timbel_dagster.warehouse.audit.chain import append_event

    since, until = source.window
    with engine.begin() as connection:
        results: Results = {}
        results |= ingest_directory(connection, source)
        results |= ingest_ci(connection, source, since, until)
        results |= ingest_delivery_history(connection, source, since, until)
        append_event(
            connection,
            actor=actor,
            action="sample.load",
            target=f"sample organisation seed={source.seed} end={source.end_date}",
            details={
                "seed": source.seed,
                "end_date": source.end_date.isoformat(),
                "written": {table: r.written for table, r in results.items()},
                "offered": {table: r.offered for table, r in results.items()},
            },
        )
    return results
