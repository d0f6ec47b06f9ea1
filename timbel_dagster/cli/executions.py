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
    for r in rows:
        started = r["started_at"].strftime("%Y-%m-%d %H:%M") if r["started_at"] else "-"
        duration = f"{r['duration']:.0f}s" if r["duration"] is not None else "-"
        click.echo(
            f"{r['id'][:8]}  {started}  {r['status']:<8} {duration:>6}  "
            f"{r['pipeline']} #{r['external_id']}  {r['error_message'] or ''}"
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
    click.echo("stages:")
    for s in execution["stages"]:
        block = f"{s['parent_name']} / " if s["parent_name"] else ""
        retry = f" (attempt {s['attempt']})" if s["attempt"] > 1 else ""
        click.echo(
            f"  {s['position']:>2}. {block}{s['name']:<20} {s['status']:<8} "
            f"{(s['duration'] or 0):>7.1f}s{retry}"
        )
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
