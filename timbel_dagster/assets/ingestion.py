"""Helpers shared by the ingestion assets: result metadata and the run's audit event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.warehouse.upsert import UpsertResult

OWNERS = ["team:platform"]


def upsert_metadata(result: UpsertResult, source: str) -> dict[str, Any]:
    """What a materialization reports for one table."""
    return {
        "dagster/row_count": dg.MetadataValue.int(result.offered),
        "rows_written": dg.MetadataValue.int(result.written),
        "rows_unchanged": dg.MetadataValue.int(result.unchanged),
        "source": dg.MetadataValue.text(source),
    }


def record_ingestion(
    connection: Connection,
    context: dg.AssetExecutionContext,
    source: str,
    results: dict[str, UpsertResult],
) -> None:
    """Append the run's audit event in the same transaction as the rows it wrote."""
    from timbel_dagster.warehouse.audit import append_event

    append_event(
        connection,
        actor="dagster",
        action="ingest",
        target=",".join(key.to_user_string() for key in context.selected_asset_keys),
        details={
            "run_id": context.run.run_id,
            "source": source,
            "written": {table: r.written for table, r in results.items()},
            "offered": {table: r.offered for table, r in results.items()},
        },
    )
