"""The `slo_burn_rate` fact: SLOs whose latest status burns the error budget fast enough to
page or to open a ticket (the built-in rules slo-fast-burn and slo-slow-burn).

It reads the latest stored status of each SLO (`slo/slo_status`), not Prometheus: the alert
and the status the UI and `timbel slo status` show agree, and the rule engine's minute tick
costs one small query. The conditions are re-checked on the stored burn rates, so an alert
resolves at the first status in which its conditions no longer hold (the short window falls
under the factor minutes after the burn stops).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from timbel_dagster.slo import budget
from timbel_dagster.slo.spec import duration_text, parse_duration
from timbel_dagster.slo.status import latest

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

Observation = tuple[dict[str, str], float]
# A status older than this is not read: the schedule evaluates every 5 minutes, so this is
# several missed evaluations (`timbel slo status` and the asset's page show how old it is).
DEFAULT_MAX_AGE = "30m"


def slo_burn_rate(
    connection: Connection, params: dict[str, Any], now: dt.datetime
) -> list[Observation]:
    """Per SLO whose latest status (at most `max_age` old, default 30m) meets a condition of
    `severity` (param: page or ticket; default page): the highest burn rate of the long
    windows of the conditions that hold, labelled with the service, the SLO and its window."""
    severity = str(params.get("severity", "page"))
    if severity not in budget.SEVERITIES:
        raise ValueError(
            f"severity must be one of {', '.join(budget.SEVERITIES)}, not {severity!r}"
        )
    max_age = parse_duration(params.get("max_age", DEFAULT_MAX_AGE), "max_age")
    found = []
    for status in latest(connection, at=now, max_age=max_age):
        holding = budget.firing(status.burn, status.window, severity)
        if holding:
            labels = {
                "service": status.service,
                "slo": status.slo,
                "slo_window": duration_text(status.window),
            }
            found.append((labels, max(status.burn[c.long] or 0.0 for c in holding)))
    return found
