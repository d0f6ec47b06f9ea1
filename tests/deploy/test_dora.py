from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from timbel_dagster.deploy.dora import compute_dora, recent_dora, summarise_dora

MON = dt.datetime(2026, 10, 5, 10, tzinfo=dt.UTC)  # a Monday


def _deployments(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": i,
                "service": s,
                "environment": env,
                "kind": kind,
                "status": status,
                "started_at": MON + dt.timedelta(hours=h),
                "completed_at": MON + dt.timedelta(hours=h, minutes=5),
            }
            for i, s, env, kind, status, h in rows
        ]
    )


NO_INCIDENTS = pd.DataFrame(
    columns=["service", "environment", "opened_at", "resolved_at", "caused_by_deployment_id"]
)
NO_COMMITS = pd.DataFrame(columns=["deployment_id", "commit_id", "committed_at"])


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # two good releases, one failed: CFR 1/3, 2 shipped
        (
            [
                ("d1", "api", "prod", "release", "success", 0),
                ("d2", "api", "prod", "release", "success", 24),
                ("d3", "api", "prod", "release", "failed", 48),
            ],
            {"deployments": 2, "change_failure_rate": 0.3333, "rework_rate": 0.0},
        ),
        # a rollback ships nothing new but is rework
        (
            [
                ("d1", "api", "prod", "release", "failed", 0),
                ("d2", "api", "prod", "rollback", "success", 1),
            ],
            {"deployments": 0, "change_failure_rate": 1.0, "rework_rate": 0.5},
        ),
        # dev deployments do not count for prod
        (
            [
                ("d1", "api", "dev", "release", "success", 0),
                ("d2", "api", "prod", "hotfix", "success", 2),
            ],
            {"deployments": 1, "change_failure_rate": 0.0, "rework_rate": 1.0},
        ),
    ],
)
def test_weekly_counts_and_rates(rows: list, expected: dict) -> None:
    result = compute_dora(_deployments(*rows), NO_COMMITS, NO_INCIDENTS)
    organisation = [r for r in result if r["service"] == "*"]
    assert len(organisation) == 1
    assert organisation[0]["week_start"] == MON.date()
    for key, value in expected.items():
        assert organisation[0][key] == pytest.approx(value, abs=1e-4), key


def test_lead_time_counts_each_commit_at_its_first_successful_deployment() -> None:
    deployments = _deployments(
        ("d1", "api", "prod", "release", "success", 10),
        ("d2", "api", "prod", "release", "success", 20),
    )
    commits = pd.DataFrame(
        [
            {"deployment_id": "d1", "commit_id": "c1", "committed_at": MON},  # 10h05 before d1 ends
            {
                "deployment_id": "d2",
                "commit_id": "c1",
                "committed_at": MON,
            },  # shipped again: ignored
            {
                "deployment_id": "d2",
                "commit_id": "c2",
                "committed_at": MON + dt.timedelta(hours=18),
            },
        ]
    )
    [organisation, _service] = compute_dora(deployments, commits, NO_INCIDENTS)
    assert organisation["lead_time_hours_median"] == pytest.approx(
        (10 + 1 / 12 + 2 + 1 / 12) / 2, abs=1e-3
    )


def test_incidents_make_failures_and_restore_time() -> None:
    deployments = _deployments(
        ("d1", "api", "prod", "release", "success", 0),
        ("d2", "web", "prod", "release", "success", 1),
    )
    incidents = pd.DataFrame(
        [
            {
                "service": "api",
                "environment": "prod",
                "opened_at": MON + dt.timedelta(hours=1),
                "resolved_at": MON + dt.timedelta(hours=4),
                "caused_by_deployment_id": "d1",
            }
        ]
    )
    rows = {r["service"]: r for r in compute_dora(deployments, NO_COMMITS, incidents)}
    assert rows["*"]["change_failure_rate"] == 0.5
    assert rows["api"]["change_failure_rate"] == 1.0
    assert rows["web"]["change_failure_rate"] == 0.0
    assert rows["api"]["time_to_restore_hours_median"] == 3.0
    assert rows["web"]["time_to_restore_hours_median"] is None


def test_summary_over_a_period() -> None:
    deployments = _deployments(
        *[(f"d{i}", "api", "prod", "release", "success", 24 * i) for i in range(14)]
    )
    since = MON - dt.timedelta(hours=1)
    summary = summarise_dora(
        deployments, NO_COMMITS, NO_INCIDENTS, since, since + dt.timedelta(days=7)
    )
    assert summary is not None
    assert summary["deployments"] == 7
    assert summary["deployments_per_day"] == 1.0


def test_no_production_deployments_means_no_rows() -> None:
    assert (
        compute_dora(
            _deployments(("d1", "api", "dev", "release", "success", 0)), NO_COMMITS, NO_INCIDENTS
        )
        == []
    )


def test_recent_weeks_end_with_the_newest_deployment() -> None:
    """Five weeks of daily deployments (api every day, web on Mondays): the last 2 weeks are
    the 2 ISO weeks up to the newest deployment, and the period's summary is theirs."""
    deployments = _deployments(
        *[(f"a{i}", "api", "prod", "release", "success", 24 * i) for i in range(35)],
        *[(f"w{i}", "web", "prod", "release", "success", 24 * 7 * i + 1) for i in range(5)],
    )
    recent = recent_dora(deployments, NO_COMMITS, NO_INCIDENTS, weeks=2)
    assert recent is not None
    newest = MON + dt.timedelta(days=34)  # the Sunday of the fifth week
    assert recent["until"] == newest + dt.timedelta(seconds=1)
    assert recent["since"] == recent["until"] - dt.timedelta(weeks=2)
    weeks = [MON.date() + dt.timedelta(weeks=3), MON.date() + dt.timedelta(weeks=4)]
    assert [(r["week_start"], r["deployments"]) for r in recent["weekly"]] == [
        (weeks[0], 8),
        (weeks[1], 8),
    ]
    assert recent["summary"]["deployments"] == 16 and "week_start" not in recent["summary"]
    assert recent["summary"] == {
        k: v
        for k, v in summarise_dora(
            deployments, NO_COMMITS, NO_INCIDENTS, recent["since"], recent["until"]
        ).items()
        if k != "week_start"
    }

    web = recent_dora(deployments, NO_COMMITS, NO_INCIDENTS, weeks=2, service="web")
    assert web is not None and web["service"] == "web"
    assert [r["deployments"] for r in web["weekly"]] == [1, 1]
    assert web["summary"]["deployments"] == 2


def test_recent_weeks_of_nothing() -> None:
    empty = _deployments()
    assert recent_dora(empty, NO_COMMITS, NO_INCIDENTS) is None
    with pytest.raises(ValueError, match="weeks must be at least 1"):
        recent_dora(empty, NO_COMMITS, NO_INCIDENTS, weeks=0)
