"""`timbel sample` and `timbel demo`: the sample organisation and the end-to-end demo."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import click

from timbel_dagster.cli.common import (
    echo_for,
    friendly_errors,
    print_json,
    settings_or_exit,
)
from timbel_dagster.cli.tables import print_counts
from timbel_dagster.resources.sample.source import SampleSource
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine

if TYPE_CHECKING:
    from timbel_dagster.settings import Settings


# --- sample ------------------------------------------------------------------------------
@click.command()
@click.option("--seed", type=int, default=None, help="Default: TIMBEL_SAMPLE_SEED.")
@click.option(
    "--end-date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day of the 90 days. Default: TIMBEL_SAMPLE_END_DATE or today (UTC).",
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def sample(seed: int | None, end_date: dt.datetime | None, as_json: bool) -> None:
    """Write the sample organisation (source='sample') into the warehouse."""
    # lazy: sample_load loads Dagster; `timbel --help` loads without it
    from timbel_dagster.sample_load import load_sample

    settings = settings_or_exit()
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
        print_json(
            {"seed": source.seed, "end_date": source.end_date.isoformat(), "tables": summary}
        )
        return
    click.echo(f"Sample organisation seed={source.seed}, 90 days to {source.end_date}:")
    print_counts(summary)


# --- demo ---------------------------------------------------------------------------------
SAMPLE_MODE_NOTE = """\
Written by `timbel demo`. Where this file is, TIMBEL_SAMPLE_DATA defaults to true: the timbel
CLI and `make dev` use the sample organisation the demo loaded.
To use your own servers instead: delete this file, or set TIMBEL_SAMPLE_DATA=false (a value
in the environment or .env always wins).
"""


def remember_sample_mode(settings: Settings) -> dict[str, Any]:
    """Leave the marker that keeps this TIMBEL_HOME in sample mode, and say so."""
    marker = settings.sample_mode_marker
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(SAMPLE_MODE_NOTE, encoding="utf-8")
    overridden = "timbel_sample_data" in settings.model_fields_set and not (
        settings.timbel_sample_data
    )
    return {"marker": str(marker), "overridden_by_setting": overridden}


def sample_mode_lines(sample_mode: dict[str, Any]) -> list[str]:
    marker = sample_mode["marker"]
    if sample_mode["overridden_by_setting"]:
        return [
            f"Sample mode is remembered in {marker}, but TIMBEL_SAMPLE_DATA=false is set: the",
            "  CLI uses your configured servers until you unset it.",
        ]
    return [
        "Sample mode: `timbel` commands here now use the sample organisation (remembered in",
        f"  {marker}). To use your own servers: delete that file, or set",
        "  TIMBEL_SAMPLE_DATA=false.",
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def demo(as_json: bool) -> None:
    """Run the platform end to end on the sample organisation, through Dagster; afterwards
    this TIMBEL_HOME stays in sample mode (TIMBEL_HOME/sample-mode)."""
    from dataclasses import asdict

    # lazy: demo loads Dagster; `timbel --help` loads without it
    from timbel_dagster.demo import format_report, run_demo

    settings = settings_or_exit()
    report = run_demo(settings, echo=echo_for(as_json))
    sample_mode = remember_sample_mode(settings)
    if as_json:
        print_json(asdict(report) | {"sample_mode": sample_mode})
    else:
        click.echo(format_report(report))
        click.echo("\n".join(sample_mode_lines(sample_mode)))
