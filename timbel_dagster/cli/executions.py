"""`timbel executions`: the pipeline execution history."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import (
    connect,
    fail,
    friendly_errors,
    parse_since,
    print_json,
)
from timbel_dagster.cli.tables import (
    Column,
    count,
    duration,
    percent,
    plural,
    print_table,
    right,
    text,
    when,
)
from timbel_dagster.cli.timeline import stage_timeline
from timbel_dagster.warehouse.read.history import duration_percentiles, execution_detail
from timbel_dagster.warehouse.read.queries import ExecutionFilter, list_executions
from timbel_dagster.warehouse.store.logs import read_log

NO_EXECUTIONS = (
    "no executions yet: load the sample (`timbel sample`) or ingest a CI server "
    "(`timbel ingest jenkins` / `timbel ingest gitlab`)"
)
PERCENTILES = [
    Column("PIPELINE", "pipeline"),
    right("RUNS", "executions", count),
    right("SUCCESS", "success_rate", percent),
    right("P50", "p50_seconds", duration),
    right("P90", "p90_seconds", duration),
    right("P99", "p99_seconds", duration),
]


# --- executions --------------------------------------------------------------------------
@click.group()
def executions() -> None:
    """Pipeline execution history."""


@executions.command("list")
@click.option("--pipeline", help="Part of the pipeline name.")
@click.option("--status", help="pending, running, success, failed or aborted.")
@click.option("--since", help="7d, 12h, or an ISO date/time.")
@click.option(
    "--search", help="Text (3 characters at least) to find in the stored log or error message."
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def executions_list(
    pipeline: str | None,
    status: str | None,
    since: str | None,
    search: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List executions, newest first."""

    where = ExecutionFilter(
        pipeline=pipeline, status=status, since=parse_since(since), search=search, limit=limit
    )
    with connect() as connection:
        rows = list_executions(connection, where)
    if as_json:
        print_json(rows)
        return
    filtered = any(v is not None for v in (pipeline, status, since, search))
    print_rows(
        rows,
        empty="no executions match these filters (fewer filters, or an older --since, find more)"
        if filtered
        else NO_EXECUTIONS,
        footer=plural(len(rows), "execution")
        + (f" (the newest {limit}; --limit shows more)" if len(rows) == limit else ""),
    )
    if not rows:
        return

    with connect() as connection:
        stats = duration_percentiles(
            connection, sorted({r["pipeline"] for r in rows}), since=parse_since(since)
        )
    print_table(
        [s for s in stats if s["p50_seconds"] is not None],
        PERCENTILES,
        empty="",
        title="\nduration percentiles of these pipelines:",
    )


def print_rows(rows: list[dict], empty: str = NO_EXECUTIONS, footer: str | None = None) -> None:
    """Executions as a table: id, start, status, duration, pipeline and build, error."""
    print_table(
        rows,
        [
            Column("ID", lambda r: r["id"][:8]),
            Column("STARTED", "started_at", when),
            Column("STATUS", "status"),
            right("DURATION", "duration", duration),
            Column("PIPELINE", lambda r: f"{r['pipeline']} #{r['external_id']}"),
            Column("ERROR", "error_message"),
        ],
        empty=empty,
        footer=footer,
    )


@executions.command("stats")
@click.option("--pipeline", help="Part of the pipeline name.")
@click.option("--since", help="7d, 12h, or an ISO date/time.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def executions_stats(pipeline: str | None, since: str | None, as_json: bool) -> None:
    """Per pipeline: finished executions, success rate, duration p50/p90/p99."""

    with connect() as connection:
        rows = duration_percentiles(connection, since=parse_since(since))
    if pipeline:
        rows = [r for r in rows if pipeline.lower() in r["pipeline"].lower()]
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        PERCENTILES,
        empty=(
            f"no finished executions of a pipeline matching {pipeline!r}"
            if pipeline
            else f"no finished executions yet{' in that period' if since else ''}: "
            + NO_EXECUTIONS.removeprefix("no executions yet: ")
        ),
    )


@executions.command("show")
@click.argument("execution_id")
@click.option("--log", "show_log", is_flag=True, help="Print the whole stored log.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def executions_show(execution_id: str, show_log: bool, as_json: bool) -> None:
    """Show one execution (full id or a prefix of at least 6 characters) with its stages."""

    with connect() as connection:
        execution = execution_detail(connection, execution_id)
    if execution is None:
        fail(f"no execution with id {execution_id!r}")
        return
    typical = execution["pipeline_percentiles"]
    if as_json:
        print_json(execution)
        return
    for key in (
        "id",
        "pipeline",
        "external_id",
        "status",
        "triggered_by",
        "started_at",
        "completed_at",
        "duration",
        "branch",
        "commit_sha",
        "url",
        "error_message",
    ):
        show = {"duration": duration, "started_at": when, "completed_at": when}.get(key, text)
        click.echo(f"{key:<14} {show(execution[key])}")
    if typical and typical["p50_seconds"] is not None:
        click.echo(
            f"{'typical':<14} p50 {duration(typical['p50_seconds'])}, p90 "
            f"{duration(typical['p90_seconds'])}, p99 {duration(typical['p99_seconds'])} over "
            f"{typical['executions']:,} runs of this pipeline"
        )
    click.echo("stages (timeline from the start of the execution):")
    for line in stage_timeline(execution):
        click.echo(line)
    files = (execution.get("artifacts") or {}).get("files") or []
    if files:
        click.echo("artifacts:")
        for item in files:
            name = item.get("name") or item.get("filename") or item.get("file_type")
            click.echo(f"  {name}  {item.get('url') or ''}".rstrip())
    if show_log:
        import uuid

        with connect() as connection:
            click.echo("log:")
            for chunk in read_log(connection, uuid.UUID(execution["id"])):
                click.echo(chunk, nl=False)
            click.echo()
    elif execution.get("logs"):
        click.echo("log (tail; --log prints all of it):\n" + execution["logs"])
