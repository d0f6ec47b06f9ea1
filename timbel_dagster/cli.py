"""The `timbel` command: a thin layer over the functions the assets use.

Every command takes `--json` where it prints data. Errors are one line on stderr and exit
code 2; state-changing commands append an audit event in the same transaction as the change.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from timbel_dagster.settings import Settings, SettingsError, load_settings


def _fail(message: str) -> None:
    click.echo(f"timbel: error: {message}", err=True)
    sys.exit(2)


def _friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can fix into one line instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from timbel_dagster.resources.delivery import SourceNotConfiguredError
        from timbel_dagster.resources.errors import SourceError
        from timbel_dagster.warehouse.engine import WarehouseUnavailableError

        try:
            return command(*args, **kwargs)
        except (
            SettingsError,
            WarehouseUnavailableError,
            SourceNotConfiguredError,
            SourceError,
            LookupError,
            ValueError,
        ) as error:
            _fail(str(error))

    return wrapper


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        _fail(str(error))
        raise  # unreachable: _fail exits
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("timbel_dagster").setLevel(settings.timbel_log_level)
    return settings


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def _parse_since(value: str | None) -> dt.datetime | None:
    """`7d`, `12h`, `30m`, or an ISO date/time (UTC unless it says otherwise)."""
    if not value:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value[-1:] in units and value[:-1].isdigit():
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration (7d, 12h) or an ISO date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@click.group()
@click.version_option(package_name="timbel-dagster")
def main() -> None:
    """Timbel: delivery operations on Dagster."""


# --- db ----------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Warehouse schema migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def db_upgrade(revision: str, as_json: bool) -> None:
    """Migrate the warehouse up (running it twice is a no-op)."""
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.urls import display_url

    settings = _settings()
    before, after = migrate.upgrade(settings.database_url, revision, actor=settings.timbel_user)
    if as_json:
        _print_json(
            {
                "database": display_url(settings.database_url),
                "before": before,
                "after": after,
                "changed": before != after,
            }
        )
    elif before == after:
        click.echo(f"Warehouse already at {after} ({display_url(settings.database_url)}).")
    else:
        click.echo(
            f"Migrated {before or 'empty'} -> {after} ({display_url(settings.database_url)})."
        )


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_friendly_errors
def db_downgrade(revision: str, yes: bool) -> None:
    """Migrate the warehouse down to REVISION (`base` drops every table)."""
    from timbel_dagster.warehouse import migrate

    settings = _settings()
    if not yes:
        click.confirm(
            f"Downgrade the warehouse to {revision}? Data in dropped tables is lost", abort=True
        )
    before, after = migrate.downgrade(settings.database_url, revision, actor=settings.timbel_user)
    click.echo(f"Migrated {before} -> {after or 'empty'}.")


@db.command("current")
@_friendly_errors
def db_current() -> None:
    """Print the warehouse's schema revision and the newest this code ships."""
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import check_connection

    settings = _settings()
    check_connection(settings.database_url)
    current = migrate.current_revision(settings.database_url)
    click.echo(f"current: {current or 'empty'}  head: {migrate.head_revision()}")


# --- sample ------------------------------------------------------------------------------
@main.command()
@click.option("--seed", type=int, default=None, help="Default: TIMBEL_SAMPLE_SEED.")
@click.option(
    "--end-date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day of the 90 days. Default: TIMBEL_SAMPLE_END_DATE or today (UTC).",
)
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def sample(seed: int | None, end_date: dt.datetime | None, as_json: bool) -> None:
    """Write the sample organisation (source='sample') into the warehouse."""
    from timbel_dagster.resources.sample.load import load_sample
    from timbel_dagster.resources.sample.source import SampleSource
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine

    settings = _settings()
    migrate.upgrade(settings.database_url, actor=settings.timbel_user)
    source = SampleSource(
        end_date=end_date.date()
        if end_date
        else (settings.timbel_sample_end_date or dt.datetime.now(dt.UTC).date()),
        seed=settings.timbel_sample_seed if seed is None else seed,
    )
    results = load_sample(get_engine(settings.database_url), source, actor=settings.timbel_user)
    summary = {table: {"offered": r.offered, "written": r.written} for table, r in results.items()}
    if as_json:
        _print_json(
            {"seed": source.seed, "end_date": source.end_date.isoformat(), "tables": summary}
        )
        return
    click.echo(f"Sample organisation seed={source.seed}, 90 days to {source.end_date}:")
    for table, counts in summary.items():
        click.echo(f"  {table:<20} {counts['offered']:>7} rows, {counts['written']:>7} written")


# --- demo --------------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def demo(as_json: bool) -> None:
    """Run the platform end to end on the sample organisation, through Dagster."""
    from dataclasses import asdict

    from timbel_dagster.demo import format_report, run_demo

    settings = _settings()
    report = run_demo(
        settings, echo=(lambda line: click.echo(line, err=True)) if as_json else click.echo
    )
    if as_json:
        _print_json(asdict(report))
    else:
        click.echo(format_report(report))


# --- ingest ------------------------------------------------------------------------------
@main.command()
@click.argument("system", type=click.Choice(["jenkins", "gitlab"]))
@click.option("--since", default="3d", show_default=True, help="7d, 12h, or an ISO date/time.")
@click.option(
    "--stages",
    type=click.Choice(["recent", "all", "none"]),
    default="recent",
    show_default=True,
    help="Which builds' stages to read (all: one request per build).",
)
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def ingest(system: str, since: str, stages: str, as_json: bool) -> None:
    """Ingest a CI server's pipelines and executions once (backfills)."""
    from timbel_dagster.backfill import run_ingest

    settings = _settings()
    moment = _parse_since(since)
    assert moment is not None
    report = run_ingest(
        settings,
        system,
        moment,
        stages=stages,
        echo=(lambda line: click.echo(line, err=True)) if as_json else click.echo,
    )
    if as_json:
        _print_json(report)
        return
    for table in ("pipelines", "pipeline_executions", "stage_executions"):
        counts = report[table]
        click.echo(f"  {table:<20} {counts['offered']:>7} rows, {counts['written']:>7} written")
    click.echo(
        f"  {report.get('requests', '-')} requests to {system} in {report['seconds']}s, "
        f"run {report['run_id'][:8]}"
    )


# --- executions --------------------------------------------------------------------------
@main.group()
def executions() -> None:
    """Pipeline execution history."""


def _connect() -> Any:
    from timbel_dagster.warehouse.engine import check_connection, get_engine

    settings = _settings()
    check_connection(settings.database_url)
    return get_engine(settings.database_url).connect()


@executions.command("list")
@click.option("--pipeline", help="Part of the pipeline name.")
@click.option("--status", help="pending, running, success, failed or aborted.")
@click.option("--since", help="7d, 12h, or an ISO date/time.")
@click.option("--search", help="Text to find in the stored log or error message.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
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
        pipeline=pipeline, status=status, since=_parse_since(since), search=search, limit=limit
    )
    with _connect() as connection:
        rows = list_executions(connection, where)
    if as_json:
        _print_json(rows)
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
@click.option("--json", "as_json", is_flag=True)
@_friendly_errors
def executions_show(execution_id: str, as_json: bool) -> None:
    """Show one execution (full id or a prefix of at least 6 characters) with its stages."""
    from timbel_dagster.warehouse.queries import get_execution

    with _connect() as connection:
        execution = get_execution(connection, execution_id)
    if execution is None:
        _fail(f"no execution with id {execution_id!r}")
        return
    if as_json:
        _print_json(execution)
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
    if execution.get("logs"):
        click.echo("log:\n" + execution["logs"])


if __name__ == "__main__":
    main()
