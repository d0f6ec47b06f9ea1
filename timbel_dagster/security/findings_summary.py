"""What the vulnerability findings in the warehouse add up to: open ones per severity, the
artifacts with the most, and how many were fixed lately. Read-only, plain SQLAlchemy."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.trivy import SEVERITIES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def vulnerability_summary(
    connection: Connection, now: dt.datetime | None = None, days: int = 7, top: int = 10
) -> dict[str, Any]:
    """Open vulnerability findings (no `fixed_at`) per severity, the `top` artifacts by open
    critical and high findings, and the findings fixed in the last `days` days."""
    from sqlalchemy import case, func, select

    # lazy: warehouse.schema.security loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.security import VulnerabilityFinding as V

    now = now or dt.datetime.now(dt.UTC)
    open_ = V.fixed_at.is_(None)
    by_severity = dict.fromkeys(SEVERITIES, 0) | dict(
        connection.execute(select(V.severity, func.count()).where(open_).group_by(V.severity))
        .tuples()
        .all()
    )
    serious = func.sum(case((V.severity.in_(("CRITICAL", "HIGH")), 1), else_=0))
    critical = func.sum(case((V.severity == "CRITICAL", 1), else_=0))
    artifacts = [
        {"artifact": name, "critical": int(c or 0), "critical_or_high": int(s or 0), "open": n}
        for name, c, s, n in connection.execute(
            select(V.artifact_name, critical, serious, func.count())
            .where(open_)
            .group_by(V.artifact_key, V.artifact_name)
            .order_by(serious.desc(), func.count().desc(), V.artifact_name)
            .limit(top)
        ).tuples()
    ]
    fixed = connection.execute(
        select(func.count()).where(V.fixed_at >= now - dt.timedelta(days=days))
    ).scalar_one()
    return {
        "open": sum(by_severity.values()),
        "open_by_severity": by_severity,
        "distinct_open_ids": connection.execute(
            select(func.count(func.distinct(V.vulnerability_id))).where(open_)
        ).scalar_one(),
        "fixed_recently": fixed,
        "fixed_window_days": days,
        "artifacts": artifacts,
    }
