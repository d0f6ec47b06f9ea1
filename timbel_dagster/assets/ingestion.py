"""Helpers shared by the ingestion assets: reading a source and handing what it returned to
storage (read first, then write: DESIGN 1b), result metadata and the run's audit event.

The `read_*` and `ingest_*` functions are the caller's side of `warehouse/store/ingest.py`: storage
takes records and never a client. A CI server is asked over HTTP, and no HTTP call runs
inside an open transaction: the assets read it first with `read_pipelines`/`read_executions`
/`read_ci` (the warehouse only through a short read connection, closed before the server is
asked), then write what was read with `store_ci` in one transaction. `ingest_pipelines`/
`ingest_executions`/`ingest_ci` do both on the caller's connection, for sources that answer
from memory (the sample, `timbel sample`); `ingest_directory`/`ingest_commits`/
`ingest_deployments`/`ingest_delivery_history` hand a history source's records to the
loaders on the caller's connection. Storage is imported inside them: SQLAlchemy loads in the
runs, not with the code location."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from timbel_dagster.assets.metadata import cell_text
from timbel_dagster.records.delivery import CIRead
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.store.upsert import UpsertResult

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from timbel_dagster.resources.delivery import CISource, DeliveryHistorySource
    from timbel_dagster.warehouse.store.upsert import UpsertResult

    Results = dict[str, UpsertResult]

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


def read_pipelines(source: CISource) -> CIRead:
    """The source's pipelines and the entries of its job list it could not parse."""
    return CIRead(pipelines=list(source.pipelines()))


def _executions(
    source: CISource, since: dt.datetime, until: dt.datetime, final: frozenset[tuple[str, str]]
) -> CIRead:
    # Memory: the source's whole range (records with their stages, and rejects) is collected
    # into a list before anything is written. That is fine: the batch is written as one
    # transaction anyway and the loaders take it whole; a `ci_history` run over years holds
    # that range's executions at once.
    return CIRead(executions=list(source.executions(since, until, final)))


def read_executions(
    warehouse: Engine, source: CISource, since: dt.datetime, until: dt.datetime
) -> CIRead:
    """Executions (with stages) that started in the window, and the records the source
    could not parse.

    Executions already stored as finished are final: the source is told so (read on a short
    connection of `warehouse`, closed before the source is asked) that it need not read
    their stages again; their rows are still compared, so a build re-run in place is updated.
    """
    # lazy: warehouse.read.queries loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.read.queries import finished_executions

    with warehouse.connect() as connection:
        final = finished_executions(connection, source.name, since, until)
    return _executions(source, since, until, final)


def read_ci(warehouse: Engine, source: CISource, since: dt.datetime, until: dt.datetime) -> CIRead:
    """`read_pipelines` then `read_executions` (the order they are stored in)."""
    pipelines = read_pipelines(source).pipelines
    return CIRead(pipelines, read_executions(warehouse, source, since, until).executions)


def ingest_directory(connection: Connection, source: DeliveryHistorySource) -> Results:
    """Users and clusters."""
    # lazy: warehouse.store loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.store import loaders

    return {
        "users": loaders.store_users(connection, source.name, source.users()),
        "clusters": loaders.store_clusters(connection, source.name, source.clusters()),
    }


def ingest_pipelines(connection: Connection, source: CISource) -> Results:
    """`read_pipelines` and `store_ci` on the caller's connection: for a source that answers
    from memory (a server is read with `read_pipelines` before the transaction opens)."""
    # lazy: warehouse.store.ingest loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.store.ingest import store_ci

    return store_ci(connection, source.name, read_pipelines(source))


def ingest_executions(
    connection: Connection, source: CISource, since: dt.datetime, until: dt.datetime
) -> Results:
    """`read_executions` and `store_ci` on the caller's connection (a source answering from
    memory), the stored finished executions read on that connection."""
    # lazy: warehouse.read.queries loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.read.queries import finished_executions
    from timbel_dagster.warehouse.store.ingest import store_ci

    final = finished_executions(connection, source.name, since, until)
    return store_ci(connection, source.name, _executions(source, since, until, final))


def ingest_ci(
    connection: Connection, source: CISource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Pipelines, and the executions (with stages) that started in the window, on the
    caller's connection (a source answering from memory: the sample)."""
    pipelines = ingest_pipelines(connection, source)
    executions = ingest_executions(connection, source, since, until)
    rejected = pipelines["ingestion_rejects"] + executions["ingestion_rejects"]
    return pipelines | executions | {"ingestion_rejects": rejected}


def ingest_commits(
    connection: Connection, source: DeliveryHistorySource, since: dt.datetime, until: dt.datetime
) -> Results:
    """The source's commits in the window, with their change metrics."""
    # lazy: warehouse.store loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.store import loaders

    return {"commits": loaders.store_commits(connection, source.name, source.commits(since, until))}


def ingest_deployments(
    connection: Connection, source: DeliveryHistorySource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Deployments (linked to the stored commits they shipped) and incidents in the window."""
    # lazy: warehouse.store loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.store import loaders

    deployments, links = loaders.store_deployments(
        connection, source.name, source.deployments(since, until)
    )
    incidents = loaders.store_incidents(connection, source.name, source.incidents(since, until))
    return {"deployments": deployments, "deployment_commits": links, "incidents": incidents}


def ingest_delivery_history(
    connection: Connection, source: DeliveryHistorySource, since: dt.datetime, until: dt.datetime
) -> Results:
    """Commits, deployments (with the commits they shipped) and incidents in the window."""
    return ingest_commits(connection, source, since, until) | ingest_deployments(
        connection, source, since, until
    )
