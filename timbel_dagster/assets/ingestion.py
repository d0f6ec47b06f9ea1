"""Helpers shared by the ingestion assets: result metadata and the run's audit event."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from timbel_dagster.assets.metadata import cell_text
from timbel_dagster.warehouse.engine import get_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

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
        # An op job (the long-range `ci_history`) selects no asset: it names the job instead.
        target=",".join(key.to_user_string() for key in context.selected_asset_keys)
        or context.job_name,
        details={
            "run_id": context.run.run_id,
            "source": source,
            "written": {table: r.written for table, r in results.items()},
            "offered": {table: r.offered for table, r in results.items()},
        },
    )


def ingest_each(
    context: dg.AssetExecutionContext,
    warehouse: Any,
    sources: list[Any],
    ingest: Callable[[Connection, Any], dict[str, UpsertResult]],
) -> tuple[dict[str, UpsertResult], str]:
    """Run `ingest` for each source in a transaction of its own (with its audit event) and
    add the results up per table; returns the totals and the sources' names."""

    totals: dict[str, UpsertResult] = {}
    for source in sources:
        with warehouse.begin() as connection:
            results = ingest(connection, source)
            record_ingestion(connection, context, source.name, results)
        _add_up(context, totals, source.name, results)
    return totals, ",".join(s.name for s in sources)


Read = TypeVar("Read")


def read_then_write_each(
    context: dg.AssetExecutionContext,
    warehouse: Any,
    sources: list[Any],
    read: Callable[[Engine, Any], Read],
    write: Callable[[Connection, str, Read], dict[str, UpsertResult]],
) -> tuple[dict[str, UpsertResult], str]:
    """`ingest_each` for sources that call a server: for each source, `read(engine, source)`
    first with no transaction open (every HTTP call happens there; the warehouse is read on
    short connections of `engine`, read-only, which on SQLite never take the write lock),
    then `write(connection, source name, what was read)` with the audit event in one
    transaction of the source's own (DESIGN 1b). Same totals and names as `ingest_each`."""
    warehouse.engine()  # an unreachable warehouse fails here, naming TIMBEL_DATABASE_URL
    reads = get_engine(warehouse.url(), read_only=True)
    totals: dict[str, UpsertResult] = {}
    for source in sources:
        collected = read(reads, source)
        with warehouse.begin() as connection:
            results = write(connection, source.name, collected)
            record_ingestion(connection, context, source.name, results)
        _add_up(context, totals, source.name, results)
    return totals, ",".join(s.name for s in sources)


def _add_up(
    context: dg.AssetExecutionContext,
    totals: dict[str, UpsertResult],
    source: str,
    results: dict[str, UpsertResult],
) -> None:
    """Add one source's results to the per-table `totals`, and log them."""
    for table, result in results.items():
        totals[table] = totals[table] + result if table in totals else result
    context.log.info(
        f"{source}: "
        + ", ".join(f"{t} {r.written}/{r.offered} written" for t, r in results.items())
    )


def table_metadata(totals: dict[str, UpsertResult], table: str, names: str) -> dict[str, Any]:
    """`upsert_metadata` for one table of `ingest_each`'s totals (zero when nothing ran)."""
    from timbel_dagster.warehouse.upsert import UpsertResult

    return upsert_metadata(totals.get(table, UpsertResult(table, 0, 0)), names or "none")


def markdown_table(rows: list[dict], columns: list[str], limit: int = 12) -> dg.MetadataValue:
    """A small table for the Dagster UI: a header row, the first `limit` rows (numbers to 4
    significant digits), `(none)` when there are none, and how many were left out."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        lines.append("| " + " | ".join(cell_text(row[c]) for c in columns) + " |")
    if not rows:
        lines.append("| (none) |" + " |" * (len(columns) - 1))
    elif len(rows) > limit:
        lines.append(f"\n{len(rows) - limit} more rows not shown.")
    return dg.MetadataValue.md("\n".join(lines))


def count_rejected(context: dg.OpExecutionContext, totals: dict[str, UpsertResult]) -> int:
    """How many records of the run went to `ingestion_rejects` (warned about when any)."""
    rejected = totals["ingestion_rejects"].offered if "ingestion_rejects" in totals else 0
    if rejected:
        noun = "record" if rejected == 1 else "records"
        context.log.warning(f"{rejected} {noun} could not be parsed: see ingestion_rejects")
    return rejected
