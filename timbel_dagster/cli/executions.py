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


# --- executions --------------------------------------------------------------------------
@click.group()
def executions() -> None:
    """Pipeline execution history."""


@executions.command("list")
@click.option("--pipeline", help="Part of the pipeline name.")
@click.option("--status", help="pending, running, success, failed or aborted.")
@click.option("--since", help="7d, 12h, or an ISO date/time.")
@click.option("--search", help="Text to find in the stored log or error message.")
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
    from timbel_dagster.warehouse.queries import ExecutionFilter, list_executions

    where = ExecutionFilter(
        pipeline=pipeline, status=status, since=parse_since(since), search=search, limit=limit
    )
    with connect() as connection:
        rows = list_executions(connection, where)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No executions match.")
        return
    print_rows(rows)
    from timbel_dagster.warehouse.history import duration_percentiles

    with connect() as connection:
        stats = duration_percentiles(
            connection, sorted({r["pipeline"] for r in rows}), since=parse_since(since)
        )
    click.echo("\nduration percentiles of these pipelines:")
    for s in stats:
        if s["p50_seconds"] is not None:
            click.echo(
                f"  {s['pipeline']}: p50 {s['p50_seconds']:.0f}s, p90 "
                f"{s['p90_seconds']:.0f}s, p99 {s['p99_seconds']:.0f}s "
                f"({s['executions']} runs)"
            )


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        started = r["started_at"].strftime("%Y-%m-%d %H:%M") if r["started_at"] else "-"
        duration = f"{r['duration']:.0f}s" if r["duration"] is not None else "-"
        click.echo(
            f"{r['id'][:8]}  {started}  {r['status']:<8} {duration:>6}  "
            f"{r['pipeline']} #{r['external_id']}  {r['error_message'] or ''}"
        )


@executions.command("stats")
@click.option("--pipeline", help="Part of the pipeline name.")
@click.option("--since", help="7d, 12h, or an ISO date/time.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def executions_stats(pipeline: str | None, since: str | None, as_json: bool) -> None:
    """Per pipeline: finished executions, success rate, duration p50/p90/p99."""
    from timbel_dagster.warehouse.history import duration_percentiles

    with connect() as connection:
        rows = duration_percentiles(connection, since=parse_since(since))
    if pipeline:
        rows = [r for r in rows if pipeline.lower() in r["pipeline"].lower()]
    if as_json:
        print_json(rows)
        return
    click.echo(f"{'pipeline':<40} {'runs':>6} {'success':>8} {'p50':>8} {'p90':>8} {'p99':>8}")
    for r in rows:
        cells = [
            f"{r[k]:.0f}s" if r[k] is not None else "-"
            for k in ("p50_seconds", "p90_seconds", "p99_seconds")
        ]
        click.echo(
            f"{r['pipeline'][:40]:<40} {r['executions']:>6} {r['success_rate']:>8.1%} "
            f"{cells[0]:>8} {cells[1]:>8} {cells[2]:>8}"
        )


@executions.command("show")
@click.argument("execution_id")
@click.option("--log", "show_log", is_flag=True, help="Print the whole stored log.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def executions_show(execution_id: str, show_log: bool, as_json: bool) -> None:
    """Show one execution (full id or a prefix of at least 6 characters) with its stages."""
    from timbel_dagster.warehouse.queries import get_execution

    with connect() as connection:
        execution = get_execution(connection, execution_id)
    if execution is None:
        fail(f"no execution with id {execution_id!r}")
        return
    from timbel_dagster.warehouse.history import duration_percentiles, stage_timeline

    timeline = stage_timeline(execution)  # also adds each stage's offset_seconds
    with connect() as connection:
        [typical] = duration_percentiles(connection, [execution["pipeline"]]) or [None]
    execution["pipeline_percentiles"] = typical
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
        click.echo(f"{key:<14} {execution[key] if execution[key] is not None else '-'}")
    if typical and typical["p50_seconds"] is not None:
        click.echo(
            f"{'typical':<14} p50 {typical['p50_seconds']:.0f}s, p90 "
            f"{typical['p90_seconds']:.0f}s, p99 {typical['p99_seconds']:.0f}s over "
            f"{typical['executions']} runs of this pipeline"
        )
    click.echo("stages (timeline from the start of the execution):")
    for line in timeline:
        click.echo(line)
    files = (execution.get("artifacts") or {}).get("files") or []
    if files:
        click.echo("artifacts:")
        for item in files:
            name = item.get("name") or item.get("filename") or item.get("file_type")
            click.echo(f"  {name}  {item.get('url') or ''}".rstrip())
    if show_log:
        import uuid

        from timbel_dagster.warehouse.logs import read_log

        with connect() as connection:
            click.echo("log:")
            for text in read_log(connection, uuid.UUID(execution["id"])):
                click.echo(text, nl=False)
            click.echo()
    elif execution.get("logs"):
        click.echo("log (tail; --log prints all of it):\n" + execution["logs"])
