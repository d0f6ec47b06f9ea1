"""The SLO arithmetic on hand-computed cases: SLI, error budget, burn rates and the
multi-window, multi-burn-rate policy of the SRE Workbook."""

from __future__ import annotations

import datetime as dt

import pytest

from timbel_dagster.slo import budget
from timbel_dagster.warehouse.schema.slo import BURN_COLUMNS

DAYS_30 = dt.timedelta(days=30)


@pytest.mark.parametrize(
    ("good", "total", "sli"),
    [(995, 1000, 0.995), (0, 10, 0.0), (10, 10, 1.0), (0, 0, None)],
)
def test_sli_is_good_over_valid_and_unknown_without_traffic(good, total, sli) -> None:
    assert budget.sli(good, total) == sli


@pytest.mark.parametrize(
    ("objective", "good", "total", "allowed", "remaining"),
    [
        # 99.5 % of 1,000: 5 may be bad. 2 bad spent 40 %: 60 % left.
        (0.995, 998, 1000, 5.0, 0.6),
        # Exactly the allowance: none left, the SLO is met to the event.
        (0.995, 995, 1000, 5.0, 0.0),
        # 10 bad of an allowance of 5: overspent by the whole budget again.
        (0.995, 990, 1000, 5.0, -1.0),
        # 90 % of 20: 2 may be bad; none were.
        (0.9, 20, 20, 2.0, 1.0),
        # No traffic: nothing allowed, nothing known.
        (0.99, 0, 0, 0.0, None),
    ],
)
def test_error_budget(objective, good, total, allowed, remaining) -> None:
    assert budget.allowed_bad(objective, total) == pytest.approx(allowed)
    found = budget.budget_remaining(objective, good, total)
    assert found == (None if remaining is None else pytest.approx(remaining))


@pytest.mark.parametrize(
    ("objective", "good", "total", "rate"),
    [
        (0.999, 999, 1000, 1.0),  # 0.1 % errors against 0.1 % allowed: budget lasts the window
        (0.999, 9856, 10000, 14.4),  # 1.44 % errors: the workbook's fast page threshold
        (0.995, 970, 1000, 6.0),  # 3 % against 0.5 %
        (0.9, 100, 100, 0.0),
        (0.9, 0, 0, None),  # no traffic: unknown, not 0
    ],
)
def test_burn_rate(objective, good, total, rate) -> None:
    found = budget.burn_rate(objective, good, total)
    assert found == (None if rate is None else pytest.approx(rate))


def test_the_factors_of_a_30_day_window_are_the_workbooks() -> None:
    assert [(c.severity, c.long, c.short, round(c.factor(DAYS_30), 6)) for c in budget.POLICY] == [
        ("page", "1h", "5m", 14.4),
        ("page", "6h", "30m", 6.0),
        ("ticket", "1d", "2h", 3.0),
        ("ticket", "3d", "6h", 1.0),
    ]


def test_a_shorter_window_scales_the_factors_by_the_budget_share() -> None:
    # 2 % of a 28-day budget in one hour: 0.02 * 672 h.
    page = budget.POLICY[0]
    assert page.factor(dt.timedelta(days=28)) == pytest.approx(13.44)


def _burn(**rates: float | None) -> dict[str, float | None]:
    return dict.fromkeys(budget.BURN_WINDOWS) | {k.removeprefix("w"): v for k, v in rates.items()}


@pytest.mark.parametrize(
    ("burn", "page", "ticket"),
    [
        # Both windows over 14.4: page (and 6x over 6 h and 30 m is not reached).
        (_burn(w1h=15.0, w5m=20.0, w6h=3.0, w30m=20.0), ["1h/5m"], []),
        # The burn stopped: 1 h still high, 5 m low. No page: the alert resolves.
        (_burn(w1h=15.0, w5m=0.5), [], []),
        # A short spike alone does not page.
        (_burn(w1h=2.0, w5m=100.0), [], []),
        # Exactly the factor does not fire (strictly faster, as the workbook's `>`).
        (_burn(w1h=14.4, w5m=14.4), [], []),
        # 14.4 is 2 % of the budget in an hour; the 0.001 % above it fires.
        (_burn(w1h=14.40015, w5m=14.40015), ["1h/5m"], []),
        # Slow burns: 6x over 6 h and 30 m pages; 3x over 1 d and 2 h opens a ticket.
        (_burn(w6h=6.5, w30m=7.0), ["6h/30m"], []),
        (_burn(w1d=3.5, w2h=4.0), [], ["1d/2h"]),
        (_burn(w3d=1.2, w6h=1.1), [], ["3d/6h"]),
        # Unknown (no traffic) holds nothing, even beside a burning long window.
        (_burn(w1h=50.0, w5m=None), [], []),
        (_burn(), [], []),
    ],
)
def test_multi_window_conditions(burn, page, ticket) -> None:
    def shown(conditions):
        return [f"{c.long}/{c.short}" for c in conditions]

    assert shown(budget.firing(burn, DAYS_30, "page")) == page
    assert shown(budget.firing(burn, DAYS_30, "ticket")) == ticket


def test_an_unknown_severity_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="severity must be one of page, ticket, not 'sms'"):
        budget.firing({}, DAYS_30, "sms")


def test_the_table_holds_a_column_for_every_burn_window() -> None:
    assert tuple(budget.BURN_WINDOWS) == BURN_COLUMNS
