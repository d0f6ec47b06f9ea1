"""`timbel dora`: the DORA metrics the warehouse computes (deploy/dora.py), read by
people: a weekly table within 100 columns, the period's summary, `--json`, one service, and
a clear sentence when there is nothing to show."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.test_cli import invoke
from timbel_dagster.cli.dora import NO_DEPLOYMENTS
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import Deployment, Incident

MON = dt.datetime(2026, 10, 5, 10, tzinfo=dt.UTC)  # a Monday


@pytest.fixture
def timbel(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    def command(*args: str) -> subprocess.CompletedProcess:
        return invoke(list(args), tmp_path, COLUMNS="100")

    assert command("db", "upgrade").returncode == 0
    return command


def _store(tmp_path: Path) -> None:
    """Three weeks of api releases in prod (one a day, the fifth of each week failing), web
    releases on Mondays, dev deployments that do not count, and one api incident."""
    rows = []
    for day in range(21):
        failed = day % 7 == 4
        rows.append(("api", "prod", "failed" if failed else "success", day))
        rows.append(("api", "dev", "success", day))
        if day % 7 == 0:
            rows.append(("web", "prod", "success", day))
    deployments = [
        {
            "id": uuid.uuid4(),
            "source": "jenkins",
            "external_id": str(n),
            "service": service,
            "environment": environment,
            "kind": "release",
            "status": status,
            "started_at": MON + dt.timedelta(days=day),
            "completed_at": MON + dt.timedelta(days=day, minutes=10),
        }
        for n, (service, environment, status, day) in enumerate(rows)
    ]
    incident = {
        "id": uuid.uuid4(),
        "source": "pagerduty",
        "external_id": "P1",
        "service": "api",
        "environment": "prod",
        "severity": "high",
        "title": "api down",
        "opened_at": MON + dt.timedelta(days=18),
        "resolved_at": MON + dt.timedelta(days=18, hours=2, minutes=30),
    }
    url = f"sqlite:///{tmp_path / '.timbel' / 'warehouse.db'}"
    with get_engine(url).begin() as connection:
        connection.execute(insert(Deployment), deployments)
        connection.execute(insert(Incident), [incident])


def test_an_empty_warehouse_says_how_to_get_deployments(
    timbel: Callable[..., subprocess.CompletedProcess],
) -> None:
    result = timbel("dora")
    assert (result.returncode, result.stdout) == (0, NO_DEPLOYMENTS + "\n"), result.stderr
    assert json.loads(timbel("dora", "--json").stdout) == {
        "service": "*",
        "weeks": 4,
        "summary": None,
        "weekly": [],
    }


def test_weekly_table_and_summary(
    timbel: Callable[..., subprocess.CompletedProcess], tmp_path: Path
) -> None:
    _store(tmp_path)
    result = timbel("dora", "--weeks", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0] == "DORA for the organisation in prod, per week:"
    assert lines[1].split() == [
        "WEEK", "DEPLOYS", "PER", "DAY", "LEAD", "TIME", "CHANGE", "FAILURE", "RESTORE", "REWORK",
    ]  # fmt: skip
    # Week 2: 7 api releases (1 failed) and 1 web release; no commits, so no lead time.
    assert lines[3].split() == ["2026-10-12", "7", "1", "-", "12.5%", "-", "0.0%"]
    assert lines[4].split() == ["2026-10-19", "7", "1", "-", "12.5%", "2h", "30m", "0.0%"]
    assert lines[5] == ("the last 2 weeks (2026-10-11 10:00 to 2026-10-25 10:00 UTC):")
    assert lines[6:] == [
        "  deployment frequency   1 per day (14 deployments)",
        "  lead time for changes  - (median)",
        "  change failure rate    12.5%",
        "  time to restore        2h 30m (median)",
        "  rework rate            0.0%",
    ]

    data = json.loads(timbel("dora", "--weeks", "2", "--json").stdout)
    assert data["since"] == "2026-10-11T10:00:01+00:00"
    assert [(w["week_start"], w["deployments"]) for w in data["weekly"]] == [
        ("2026-10-12", 7),
        ("2026-10-19", 7),
    ]
    assert data["summary"]["time_to_restore_hours_median"] == 2.5


def test_one_service(timbel: Callable[..., subprocess.CompletedProcess], tmp_path: Path) -> None:
    _store(tmp_path)
    web = timbel("dora", "--service", "web").stdout.splitlines()
    assert web[0] == "DORA for service web in prod, per week:"
    assert [line.split()[:2] for line in web[3:6]] == [
        ["2026-10-05", "1"],
        ["2026-10-12", "1"],
        ["2026-10-19", "1"],
    ]
    assert "  change failure rate    0.0%" in web

    typo = timbel("dora", "--service", "webb")
    assert typo.returncode == 2 and typo.stdout == ""
    assert typo.stderr == (
        "timbel: error: unknown service 'webb': no pipeline or deployment names it; "
        "did you mean web?\n"
    )
