"""The arithmetic of SLOs: SLI, error budget, burn rate and the multi-window alert policy.

As in Google's SRE Workbook, chapter "Alerting on SLOs": an SLI is good events over valid
events; the error budget of a window is the share (1 - objective) of its events that may be
bad; a burn rate is how fast a window spends it (1 = exactly the whole budget over the whole
SLO window). An alert condition holds when both a long and a short window burn faster than
its factor: the long window says enough budget is gone to matter, the short one that it is
still going (so the alert resolves minutes after the burn stops, not an hour later).

No traffic is no evidence: with no valid events the SLI, the budget and the burn rate are
unknown (None), never 100 %, and an unknown burn rate holds no condition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# The windows a status carries a burn rate for: every window the alert policy reads.
BURN_WINDOWS: dict[str, dt.timedelta] = {
    "5m": dt.timedelta(minutes=5),
    "30m": dt.timedelta(minutes=30),
    "1h": dt.timedelta(hours=1),
    "2h": dt.timedelta(hours=2),
    "6h": dt.timedelta(hours=6),
    "1d": dt.timedelta(days=1),
    "3d": dt.timedelta(days=3),
}
# Relative slack of the factor comparison: a burn rate computed as exactly the factor (14.4)
# may come out as 14.400000000000002 in binary floating point and must not fire.
_SLACK = 1e-9


@dataclass(frozen=True)
class Condition:
    """Burn faster than the factor over both windows. The factor is the share of the whole
    window's budget the long window may spend (`budget_share`), scaled to the SLO's window, as
    the workbook derives 14.4 from 2 % of a 30-day budget in 1 hour (Sloth does the same)."""

    severity: str  # page | ticket
    long: str  # a key of BURN_WINDOWS
    short: str
    budget_share: float

    def factor(self, slo_window: dt.timedelta) -> float:
        return self.budget_share * (slo_window / BURN_WINDOWS[self.long])

    def holds(self, burn: dict[str, float | None], slo_window: dt.timedelta) -> bool:
        limit = self.factor(slo_window) * (1 + _SLACK)
        long, short = burn.get(self.long), burn.get(self.short)
        return long is not None and short is not None and long > limit and short > limit


# The workbook's recommended policy: for a 30-day window, page at 14.4x over 1 h and 5 m or
# 6x over 6 h and 30 m; open a ticket at 3x over 1 d and 2 h or 1x over 3 d and 6 h.
POLICY: tuple[Condition, ...] = (
    Condition("page", "1h", "5m", 0.02),
    Condition("page", "6h", "30m", 0.05),
    Condition("ticket", "1d", "2h", 0.10),
    Condition("ticket", "3d", "6h", 0.10),
)
SEVERITIES = ("page", "ticket")


def sli(good: float, total: float) -> float | None:
    """Good over valid events; None without valid events."""
    return good / total if total > 0 else None


def error_ratio(good: float, total: float) -> float | None:
    """Bad over valid events; None without valid events."""
    return (total - good) / total if total > 0 else None


def allowed_bad(objective: float, total: float) -> float:
    """How many of `total` events may be bad and the SLO still met: (1 - objective) * total."""
    return (1 - objective) * total


def budget_remaining(objective: float, good: float, total: float) -> float | None:
    """The share of the error budget left: 1 untouched, 0 spent, below 0 overspent (the SLO
    is missed); None without valid events."""
    if total <= 0:
        return None
    return 1 - (total - good) / allowed_bad(objective, total)


def burn_rate(objective: float, good: float, total: float) -> float | None:
    """How fast the events spend the budget: the error ratio over (1 - objective); None
    without valid events."""
    ratio = error_ratio(good, total)
    return None if ratio is None else ratio / (1 - objective)


def firing(
    burn: dict[str, float | None], slo_window: dt.timedelta, severity: str
) -> list[Condition]:
    """The conditions of `severity` (page or ticket) that hold for these burn rates."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    return [c for c in POLICY if c.severity == severity and c.holds(burn, slo_window)]
