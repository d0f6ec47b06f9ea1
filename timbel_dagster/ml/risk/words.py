"""The risk advisor's findings in words a reviewer reads: each reason with its value,
direction and size (`adds 412 lines: raises risk strongly (failure odds x2.3)`), and what
the confidence means. The codes and numbers stay in the assessment for machines."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from timbel_dagster.ml.changes.metrics import RECENT_CHURN_DAYS
from timbel_dagster.ml.risk.data import NEIGHBOURS
from timbel_dagster.ml.risk.deployment_features import (
    ENVIRONMENT_RANK,
    HISTORY_WINDOW,
    NO_INCIDENT_HOURS,
)


def _number(value: float) -> str:
    """A count as people write it: 1,234 or 12.5."""
    return f"{value:,.0f}" if abs(value - round(value)) < 0.05 else f"{value:,.1f}"


def _count(value: float, one: str, many: str | None = None) -> str:
    return f"{_number(value)} {one if _number(value) == '1' else (many or one + 's')}"


def _hours(value: float) -> str:
    return _count(round(value), "hour") if value < 48 else _count(round(value / 24), "day")


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ENVIRONMENTS = {float(rank): name for name, rank in ENVIRONMENT_RANK.items()}

# What each metric's value says about the change or deployment, as a reviewer reads it. The
# per-deployment metrics sum sizes and take the least experienced author over its commits
# (`deployment_features.CHANGE_AGGREGATES`); the same words fit a single commit.
_FEATURE_WORDS: dict[str, Callable[[float], str]] = {
    "n_commits": lambda v: f"ships {_count(v, 'commit')}",
    "n_authors": lambda v: f"has {_count(v, 'author')}",
    "la": lambda v: f"adds {_count(v, 'line')}",
    "ld": lambda v: f"deletes {_count(v, 'line')}",
    "lt": lambda v: f"touches files that held {_count(v, 'line')} before",
    "nf": lambda v: f"changes {_count(v, 'file')}",
    "ns": lambda v: f"spans {_count(v, 'top-level directory', 'top-level directories')}",
    "nd": lambda v: f"spans {_count(v, 'directory', 'directories')}",
    # Entropy is in bits (the warehouse's unit, `ml/changes/metrics.py`): 2**bits is how many
    # files, equally edited, would spread the edits as much.
    "entropy": lambda v: (
        f"spreads its edits as evenly as over {2**v:,.0f} files (entropy {v:.2f} bits)"
        if v >= 1
        else f"keeps most of its edits to one file (entropy {v:.2f} bits)"
    ),
    "fix": lambda v: "is a bug fix" if v >= 0.5 else "is not a bug fix",
    "ndev": lambda v: f"touches files {_count(v, 'developer')} changed before",
    "age": lambda v: f"touches files last changed {_count(v, 'day')} earlier on average",
    "nuc": lambda v: f"touches files changed in {_count(v, 'earlier commit')}",
    "exp": lambda v: f"least experienced author has {_count(v, 'earlier change')} here",
    "rexp": lambda v: f"author's recent experience is {v:,.1f} (earlier changes, newer weigh more)",
    "sexp": lambda v: f"author has {_count(v, 'earlier change')} in the same top-level directories",
    "prior_fixes": lambda v: f"touches files that had {_count(v, 'bug fix', 'bug fixes')} before",
    "recent_churn": lambda v: (
        f"touches files in which {_count(v, 'line')} changed in the {RECENT_CHURN_DAYS} days before"
    ),
    "build_failed_stages": lambda v: f"its build had {_count(v, 'failed stage')}",
    "build_retried": lambda v: "its build was retried" if v >= 0.5 else "its build was not retried",
    "build_duration_drift": lambda v: f"its build took {v:.1f}x the pipeline's usual time",
    "flaky_rate": lambda v: f"{v:.0%} of the pipeline's recent builds needed a retry",
    "recent_failure_rate": lambda v: (
        f"{v:.0%} of the service's last {HISTORY_WINDOW} deployments failed"
    ),
    "hours_since_incident": lambda v: (
        f"no incident on the service in {_hours(NO_INCIDENT_HOURS)}"
        if v >= NO_INCIDENT_HOURS
        else f"the service's last incident began {_hours(v)} before"
    ),
    "deploys_last_7d": lambda v: f"the service was deployed {_count(v, 'time')} in the week before",
    "hour": lambda v: f"starts at {int(v) % 24:02d}:00 UTC",
    "weekday": lambda v: f"starts on a {_WEEKDAYS[int(v) % 7]}",
    "friday_or_weekend": lambda v: (
        "goes out on a Friday or at the weekend" if v >= 0.5 else "goes out Monday to Thursday"
    ),
    "hours_since_previous": lambda v: (
        f"is the service's first deployment here in {_hours(NO_INCIDENT_HOURS)}"
        if v >= NO_INCIDENT_HOURS
        else f"comes {_hours(v)} after the service's previous deployment"
    ),
    "environment": lambda v: f"goes to {_ENVIRONMENTS.get(round(v), f'environment rank {v:g}')}",
}


def _strength(contribution: float) -> str:
    size = abs(contribution)
    return "slightly" if size < 0.1 else "moderately" if size < 0.5 else "strongly"


def _factor(contribution: float) -> str:
    factor = math.exp(contribution)
    return f"{factor:.0f}" if factor >= 10 else f"{factor:.2g}"


def reason_text(reason: dict[str, Any]) -> str:
    """One reason in words: what the value is, which way it pushes the risk, how hard.

    `adds 412 lines: raises risk strongly (failure odds x2.3)`; the factor is exp of the
    contribution, what this value alone does to the odds of failure against a median change.
    """
    feature, value = str(reason["feature"]), reason["value"]
    if feature == "group":
        what = f"comes from {value} (its own failure history)"
    elif feature in _FEATURE_WORDS:
        what = _FEATURE_WORDS[feature](float(value))
    else:  # a metric a custom --columns-map brought in
        what = f"{feature} is {value if isinstance(value, str) else _number(float(value))}"
    contribution = float(reason["contribution"])
    if abs(contribution) < 0.005:
        return f"{what}: barely changes risk"
    direction = "raises" if contribution > 0 else "lowers"
    strength, factor = _strength(contribution), _factor(contribution)
    return f"{what}: {direction} risk {strength} (failure odds x{factor})"


CONFIDENCE_BASIS = (
    f"confidence comes from the {NEIGHBOURS} past deployments most like this one: how close "
    "they are, and whether their outcomes agree with this prediction"
)


def confidence_text(confidence: float, subjects: str = "deployments") -> str:
    """The confidence as a reviewer should take it (bands: below 0.3 low, from 0.6 high)."""
    if confidence >= 0.6:
        return (
            f"confidence high ({confidence:.2f}): the past {subjects} most like this one went "
            "as predicted"
        )
    if confidence >= 0.3:
        return (
            f"confidence medium ({confidence:.2f}): weigh the reasons; past {subjects} like "
            "this one are few or went partly otherwise"
        )
    return (
        f"confidence low ({confidence:.2f}): treat the recommendation as a hint; few past "
        f"{subjects} are like this one, or they went otherwise"
    )
