"""`timbel ingest`: one-shot ingestion of a CI server."""

from __future__ import annotations

import click

from timbel_dagster.cli.common import (
    echo_for,
    friendly_errors,
    parse_since,
    print_json,
    settings_or_exit,
)
from timbel_dagster.cli.tables import duration, print_counts


# --- ingest ------------------------------------------------------------------------------
@click.command()
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
@friendly_errors
def ingest(system: str, since: str, stages: str, as_json: bool) -> None:
    """Ingest a CI server's pipelines and executions once (backfills)."""
    # lazy: backfill loads Dagster; `timbel --help` loads without it
    from timbel_dagster.backfill import run_ingest

    settings = settings_or_exit()
    moment = parse_since(since)
    assert moment is not None
    report = run_ingest(
        settings,
        system,
        moment,
        stages=stages,
        echo=echo_for(as_json),
    )
    if as_json:
        print_json(report)
        return
    print_counts({t: report[t] for t in ("pipelines", "pipeline_executions", "stage_executions")})
    if report.get("rejected"):
        rejected = report["rejected"]
        click.echo(
            f"{rejected:,} record{'' if rejected == 1 else 's'} could not be parsed: "
            "kept in ingestion_rejects"
        )
    click.echo(
        f"{report.get('requests', '-')} requests to {system} in {duration(report['seconds'])}, "
        f"run {report['run_id'][:8]}"
    )
