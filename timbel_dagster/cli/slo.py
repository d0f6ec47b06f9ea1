"""`timbel slo`: the SLOs of TIMBEL_SLO_FILE and their latest status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from timbel_dagster.cli.common import connect, fail, friendly_errors, print_json, settings_or_exit
from timbel_dagster.cli.tables import Column, percent, plural, print_table, right, say
from timbel_dagster.slo.spec import SAMPLE_SLO_FILE, Slo, SloFileError, duration_text, load_slo_file
from timbel_dagster.slo.spec import slo_file as configured_slo_file
from timbel_dagster.slo.status import as_dict, latest

NO_SLOS = (
    "no SLOs: set TIMBEL_SLO_FILE to an SLO file (docs/slos.md; deploy/slos.example.yaml is "
    "one), or TIMBEL_SAMPLE_DATA=true for the sample's"
)
SHOWN_BURN = ("5m", "1h", "6h", "1d", "3d")


def _definitions() -> tuple[Any, list[Slo]]:
    settings = settings_or_exit()
    path = configured_slo_file(settings)
    if path is None:
        return None, []
    try:
        return path, load_slo_file(path)
    except SloFileError as error:
        fail(str(error))
        raise  # unreachable: fail exits


def _sli_text(slo: Slo) -> str:
    sli = slo.sli
    if sli.kind == "availability":
        return f"{sli.good or sli.bad} {'good' if sli.good else 'bad'} of {sli.total}"
    if sli.kind == "latency":
        return f"{sli.good} of {sli.total}"
    pipelines = ", ".join(sli.pipelines) or f"every pipeline of {slo.service}"
    if sli.kind == "pipeline_duration":
        return f"{pipelines}: within {duration_text(dt.timedelta(seconds=sli.threshold_seconds))}"
    return f"{pipelines}: successful"


def _definition(slo: Slo) -> dict[str, Any]:
    return {
        "service": slo.service,
        "slo": slo.name,
        "kind": slo.sli.kind,
        "source": slo.sli.source,
        "objective": slo.objective,
        "window": duration_text(slo.window),
        "sli": _sli_text(slo),
        "description": slo.description,
        "origin": slo.origin,
    }


@click.group()
def slo() -> None:
    """SLOs, error budgets and burn rates (TIMBEL_SLO_FILE)."""


@slo.command("list")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_slos(as_json: bool) -> None:
    """The SLOs of TIMBEL_SLO_FILE (in sample mode, the sample's)."""
    path, slos = _definitions()
    rows = [_definition(s) for s in slos]
    if as_json:
        print_json(rows)
        return
    if path is None:
        say(NO_SLOS)
        return
    name = "the sample's SLO file" if path == SAMPLE_SLO_FILE else str(path)
    print_table(
        rows,
        [
            Column("SERVICE", "service"),
            Column("SLO", "slo"),
            Column("KIND", "kind"),
            right("OBJECTIVE", "objective", lambda v: f"{v * 100:g}%"),
            Column("WINDOW", "window"),
            Column("SLI", "sli", wrap=True),
        ],
        empty=f"{name} defines no SLOs",
        footer=f"{plural(len(rows), 'SLO')} from {name}",
    )


def _burn(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}x"


@slo.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def status(as_json: bool) -> None:
    """The latest stored status of each SLO: SLI, error budget left, burn rates, alert."""
    with connect() as connection:
        statuses = latest(connection)
    rows = [as_dict(s) for s in statuses]
    if as_json:
        print_json(rows)
        return
    evaluated = sorted({r["evaluated_at"] for r in rows}) or [""]
    at = evaluated[0] if len(evaluated) == 1 else f"{evaluated[0]} to {evaluated[-1]}"
    print_table(
        rows,
        [
            Column("SLO", lambda r: f"{r['service']}/{r['slo']}", cut=False),
            right("SLI", "sli", percent),
            right("GOAL", "objective", lambda v: f"{v * 100:g}%"),
            right("BUDGET LEFT", "error_budget_remaining", percent),
            *(right(w, lambda r, w=w: r["burn_rates"][w], _burn) for w in SHOWN_BURN),
            Column("ALERT", lambda r: r["alert"] or "-"),
        ],
        empty="no SLO status stored yet: materialize slo/slo_status (the slo_status_every_5m "
        "schedule does, every 5 minutes, once TIMBEL_SLO_FILE is set)",
        footer=f"Evaluated at {at}. SLI and budget over each SLO's window; 5m to 3d: burn "
        "rates (1x spends the budget exactly over the window); '-': no traffic, unknown.",
    )
