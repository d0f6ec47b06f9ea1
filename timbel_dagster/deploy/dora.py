"""DORA's delivery metrics, weekly, per service and for the whole organisation.

Plain pandas, no Dagster. Definitions (DORA "Accelerate State of DevOps" 2024):
- deployment frequency: successful production deployments of new code (releases and
  hotfixes; rollbacks ship nothing new), per week and per day;
- lead time for changes: from a commit to the successful production deployment that first
  shipped it (median over the commits shipped that week);
- change failure rate: production deployments of new code that failed, were rolled back or
  opened an incident, over all such deployments attempted;
- time to restore service: from an incident being opened to its resolution (median);
- rework rate: unplanned deployments (hotfixes and rollbacks) over all production deployments.
Weeks start on Monday (UTC). The organisation's row has service `*`.

Domain code below the assets: the `cicd/dora_metrics` asset, `timbel dora`, the demo's
report and `GET /api/v1/metrics/dora` all compute with it (`dora_report` reads the
warehouse for the last two, in its own module so that loading the code location imports
no SQLAlchemy).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

ORGANISATION = "*"
SHIPS_CODE = ("release", "hotfix")


def _week(series: pd.Series) -> pd.Series:
    import pandas as pd

    moments = pd.to_datetime(series, utc=True)
    days = moments.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    return (days - pd.to_timedelta(days.dt.day_of_week, unit="D")).dt.date


def _median_or_none(values: pd.Series) -> float | None:
    clean = values.dropna()
    return round(float(clean.median()), 3) if len(clean) else None


def compute_dora(
    deployments: pd.DataFrame,
    shipped_commits: pd.DataFrame,
    incidents: pd.DataFrame,
    environment: str = "prod",
    bucket: Callable[[pd.Series], pd.Series] = _week,
) -> list[dict[str, Any]]:
    """Weekly DORA rows.

    Args:
        deployments: id, service, environment, kind, status, started_at, completed_at.
        shipped_commits: deployment_id, committed_at (one row per commit a deployment shipped).
        incidents: service, environment, opened_at, resolved_at, caused_by_deployment_id.
        environment: the environment the metrics are about.
        bucket: maps timestamps to the period they count in (default: their ISO week).

    Returns:
        One dict per (week_start, service) with the DORA columns of `dora_metrics`.
    """
    import pandas as pd

    deps = deployments[deployments["environment"] == environment].copy()
    if deps.empty:
        return []
    deps["week_start"] = bucket(deps["started_at"])
    incs = incidents[incidents["environment"] == environment].copy()
    incs["week_start"] = bucket(incs["opened_at"]) if not incs.empty else pd.Series(dtype=object)
    incs["restore_hours"] = (
        (
            (
                pd.to_datetime(incs["resolved_at"], utc=True)
                - pd.to_datetime(incs["opened_at"], utc=True)
            ).dt.total_seconds()
            / 3600
        )
        if not incs.empty
        else pd.Series(dtype=float)
    )

    caused = set(incs["caused_by_deployment_id"].dropna())
    code = deps[deps["kind"].isin(SHIPS_CODE)].copy()
    code["failed"] = code["status"].isin(["failed", "rolled_back"]) | code["id"].isin(caused)
    good = code[code["status"] == "success"]

    # Lead time: each commit counts once, at the first successful deployment that shipped it.
    lead = shipped_commits.merge(
        good[["id", "service", "completed_at", "week_start"]],
        left_on="deployment_id",
        right_on="id",
    )
    lead["hours"] = (
        pd.to_datetime(lead["completed_at"], utc=True)
        - pd.to_datetime(lead["committed_at"], utc=True)
    ).dt.total_seconds() / 3600
    lead = lead.sort_values("completed_at").drop_duplicates("commit_id", keep="first")

    rows = []
    weeks = sorted(deps["week_start"].unique())
    services = [ORGANISATION, *sorted(deps["service"].unique())]
    for service in services:

        def pick(frame: pd.DataFrame, service: str = service) -> pd.DataFrame:
            return frame if service == ORGANISATION else frame[frame["service"] == service]

        s_deps, s_code, s_good = pick(deps), pick(code), pick(good)
        s_lead, s_incs = pick(lead), pick(incs)
        for week in weeks:
            w_code = s_code[s_code["week_start"] == week]
            w_deps = s_deps[s_deps["week_start"] == week]
            if w_deps.empty and s_incs[s_incs["week_start"] == week].empty:
                continue
            shipped = int((s_good["week_start"] == week).sum())
            rows.append(
                {
                    "week_start": week,
                    "service": service,
                    "environment": environment,
                    "deployments": shipped,
                    "deployments_per_day": round(shipped / 7, 4),
                    "lead_time_hours_median": _median_or_none(
                        s_lead.loc[s_lead["week_start"] == week, "hours"]
                    ),
                    "change_failure_rate": round(float(w_code["failed"].mean()), 4)
                    if len(w_code)
                    else None,
                    "time_to_restore_hours_median": _median_or_none(
                        s_incs.loc[s_incs["week_start"] == week, "restore_hours"]
                    ),
                    "rework_rate": round(float((w_deps["kind"] != "release").mean()), 4)
                    if len(w_deps)
                    else None,
                }
            )
    return rows


def summarise_dora(
    deployments: pd.DataFrame,
    shipped_commits: pd.DataFrame,
    incidents: pd.DataFrame,
    since: dt.datetime,
    until: dt.datetime,
    environment: str = "prod",
    service: str = ORGANISATION,
) -> dict[str, Any] | None:
    """The DORA metrics of `service` (`*`: the organisation) over [since, until) as one
    period, or None if it has no deployments or incidents then."""
    import pandas as pd

    def within(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        moments = pd.to_datetime(frame[column], utc=True)
        return frame[(moments >= since) & (moments < until)]

    rows = compute_dora(
        within(deployments, "started_at"),
        shipped_commits,
        within(incidents, "opened_at"),
        environment,
        bucket=lambda series: pd.Series(since.date(), index=series.index),
    )
    summary = next((r for r in rows if r["service"] == service), None)
    if summary is not None:
        days = (until - since).total_seconds() / 86400
        summary["deployments_per_day"] = round(summary["deployments"] / days, 3)
    return summary


def recent_dora(
    deployments: pd.DataFrame,
    shipped_commits: pd.DataFrame,
    incidents: pd.DataFrame,
    weeks: int = 4,
    service: str = ORGANISATION,
    environment: str = "prod",
) -> dict[str, Any] | None:
    """DORA for `service` (`*`: the organisation) over the last `weeks` weeks, which end with
    the newest deployment so that a history that ended in the past (the sample's) still
    reports. None when there are no deployments at all.

    Returns:
        {"service", "environment", "weeks", "since", "until", "summary", "weekly"}: `summary`
        is the period [since, until) as one (`summarise_dora`; None when the service has
        nothing in it), `weekly` the rows of the last `weeks` ISO weeks (`compute_dora`).
    """
    import pandas as pd

    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, not {weeks}")
    if deployments.empty:
        return None
    newest = pd.to_datetime(deployments["started_at"], utc=True).max().to_pydatetime()
    until = newest + dt.timedelta(seconds=1)
    since = until - dt.timedelta(weeks=weeks)
    summary = summarise_dora(
        deployments, shipped_commits, incidents, since, until, environment, service
    )
    if summary is not None:
        summary.pop("week_start", None)
    first_week = newest.date() - dt.timedelta(days=newest.weekday(), weeks=weeks - 1)
    weekly = [
        row
        for row in compute_dora(deployments, shipped_commits, incidents, environment)
        if row["service"] == service and row["week_start"] >= first_week
    ]
    return {
        "service": service,
        "environment": environment,
        "weeks": weeks,
        "since": since,
        "until": until,
        "summary": summary,
        "weekly": weekly,
    }
