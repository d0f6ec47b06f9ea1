"""`timbel dora`: DORA's four keys (and rework) for the organisation or one service, per
week and over the period, from the deployments, commits and incidents in the warehouse.

The figures are `deploy/dora.dora_report`'s, the computation the `cicd/dora_metrics` asset,
the demo's report and the API use; this only prints them."""

from __future__ import annotations

from typing import Any

import click

from timbel_dagster.cli.common import connect, friendly_errors, print_json
from timbel_dagster.cli.tables import (
    Column,
    day,
    duration,
    number,
    percent,
    plural,
    print_table,
    right,
)
from timbel_dagster.deploy.dora import ORGANISATION
from timbel_dagster.deploy.dora_report import dora_report

NO_DEPLOYMENTS = (
    "no deployments yet: `timbel demo` loads the sample organisation's; in live mode the "
    "`deploy/deployments` asset derives them from CI (docs/operations.md)"
)


def _hours(value: float | None) -> float | None:
    return None if value is None else value * 3600


WEEKLY = [
    Column("WEEK", "week_start", day),
    right("DEPLOYS", "deployments", number),
    right("PER DAY", "deployments_per_day", number),
    right("LEAD TIME", lambda r: _hours(r["lead_time_hours_median"]), duration),
    right("CHANGE FAILURE", "change_failure_rate", percent),
    right("RESTORE", lambda r: _hours(r["time_to_restore_hours_median"]), duration),
    right("REWORK", "rework_rate", percent),
]


def _whom(service: str | None) -> str:
    return f"service {service}" if service else "the organisation"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The period's figures, one per line, as the demo's report prints them."""
    return [
        f"deployment frequency   {number(summary['deployments_per_day'])} per day "
        f"({plural(summary['deployments'], 'deployment')})",
        f"lead time for changes  {duration(_hours(summary['lead_time_hours_median']))} (median)",
        f"change failure rate    {percent(summary['change_failure_rate'])}",
        f"time to restore        "
        f"{duration(_hours(summary['time_to_restore_hours_median']))} (median)",
        f"rework rate            {percent(summary['rework_rate'])}",
    ]


@click.command()
@click.option("--service", default=None, help="One service (default: the whole organisation).")
@click.option(
    "--weeks",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many weeks, up to the newest deployment.",
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def dora(service: str | None, weeks: int, as_json: bool) -> None:
    """DORA metrics in prod: deployment frequency, lead time for changes, change failure
    rate, time to restore and rework rate, per week and over the last N weeks (which end
    with the newest deployment, so a history that ended in the past still reports)."""

    with connect() as connection:
        recent = dora_report(connection, service, weeks)
    if recent is None:
        if as_json:
            print_json(
                {"service": service or ORGANISATION, "weeks": weeks, "summary": None, "weekly": []}
            )
        else:
            click.echo(NO_DEPLOYMENTS)
        return
    if as_json:
        print_json(
            recent | {"since": recent["since"].isoformat(), "until": recent["until"].isoformat()}
        )
        return
    period = f"{recent['since']:%Y-%m-%d %H:%M} to {recent['until']:%Y-%m-%d %H:%M} UTC"
    print_table(
        recent["weekly"],
        WEEKLY,
        title=f"DORA for {_whom(service)} in {recent['environment']}, per week:",
        empty=f"no deployments or incidents of {_whom(service)} in "
        f"{recent['environment']} in the last {plural(weeks, 'week')} ({period}); "
        "`--weeks` looks further back",
    )
    if recent["summary"]:
        click.echo(f"the last {plural(weeks, 'week')} ({period}):")
        for line in summary_lines(recent["summary"]):
            click.echo(f"  {line}")
