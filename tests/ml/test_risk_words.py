"""The risk advisor's findings in words: every metric's reason reads as a sentence with its
value, direction and size; the confidence says how far to trust the recommendation; and the
CLI prints the words, never bare codes."""

from __future__ import annotations

import math

import pytest

from timbel_dagster.cli.deploy import _show
from timbel_dagster.cli.risk import _print_assessment, advice_lines
from timbel_dagster.ml.risk.data import FEATURES as CHANGE_FEATURES
from timbel_dagster.ml.risk.deployment_features import FEATURES as DEPLOYMENT_FEATURES
from timbel_dagster.ml.risk.words import CONFIDENCE_BASIS, confidence_text, reason_text


def _reason(feature: str, value: float | str, contribution: float) -> dict:
    direction = "raises" if contribution > 0 else "lowers"
    return {
        "feature": feature,
        "value": value,
        "contribution": contribution,
        "direction": direction,
    }


@pytest.mark.parametrize(
    ("feature", "value", "contribution", "expected"),
    [
        ("la", 412.0, 0.84, "adds 412 lines: raises risk strongly (failure odds x2.3)"),
        ("la", 1.0, 0.05, "adds 1 line: raises risk slightly (failure odds x1.1)"),
        ("ld", 12_345.0, 0.3, "deletes 12,345 lines: raises risk moderately (failure odds x1.3)"),
        (
            "exp",
            37.0,
            -0.3,
            "least experienced author has 37 earlier changes here: lowers risk moderately "
            "(failure odds x0.74)",
        ),
        ("n_commits", 3.0, 0.2, "ships 3 commits: raises risk moderately (failure odds x1.2)"),
        ("nf", 1.0, -0.2, "changes 1 file: lowers risk moderately (failure odds x0.82)"),
        ("fix", 1.0, 0.6, "is a bug fix: raises risk strongly (failure odds x1.8)"),
        ("fix", 0.0, -0.1, "is not a bug fix: lowers risk moderately (failure odds x0.9)"),
        (
            "recent_failure_rate",
            0.3,
            2.5,
            "30% of the service's last 10 deployments failed: raises risk strongly "
            "(failure odds x12)",
        ),
        (
            "hours_since_incident",
            2160.0,
            -0.2,
            "no incident on the service in 90 days: lowers risk moderately (failure odds x0.82)",
        ),
        (
            "hours_since_incident",
            5.0,
            0.7,
            "the service's last incident began 5 hours before: raises risk strongly "
            "(failure odds x2)",
        ),
        (
            "hours_since_previous",
            2160.0,
            0.2,
            "is the service's first deployment here in 90 days: raises risk moderately "
            "(failure odds x1.2)",
        ),
        (
            "hours_since_previous",
            30.4,
            -0.2,
            "comes 30 hours after the service's previous deployment: lowers risk moderately "
            "(failure odds x0.82)",
        ),
        (
            "friday_or_weekend",
            1.0,
            0.2,
            "goes out on a Friday or at the weekend: raises risk moderately (failure odds x1.2)",
        ),
        ("environment", 2.0, 0.4, "goes to prod: raises risk moderately (failure odds x1.5)"),
        ("weekday", 4.0, 0.2, "starts on a Friday: raises risk moderately (failure odds x1.2)"),
        (
            "build_duration_drift",
            1.75,
            0.2,
            "its build took 1.8x the pipeline's usual time: raises risk moderately "
            "(failure odds x1.2)",
        ),
        (
            "sexp",
            12.5,
            0.001,
            "author has 12.5 earlier changes in the same top-level directories"
            ": barely changes risk",
        ),
        (
            "prior_fixes",
            7.0,
            0.4,
            "touches files that had 7 bug fixes before: raises risk moderately (failure odds x1.5)",
        ),
        (
            "prior_fixes",
            1.0,
            -0.1,
            "touches files that had 1 bug fix before: lowers risk moderately (failure odds x0.9)",
        ),
        (
            "recent_churn",
            1240.0,
            0.6,
            "touches files in which 1,240 lines changed in the 30 days before: raises risk "
            "strongly (failure odds x1.8)",
        ),
        (
            "group",
            "shop/api",
            0.3,
            "comes from shop/api (its own failure history): raises risk moderately "
            "(failure odds x1.3)",
        ),
        (
            "churn_ratio",
            0.25,
            0.3,
            "churn_ratio is 0.2: raises risk moderately (failure odds x1.3)",
        ),
    ],
)
def test_reason_text(feature: str, value: float | str, contribution: float, expected: str) -> None:
    assert reason_text(_reason(feature, value, contribution)) == expected


@pytest.mark.parametrize("feature", sorted({*DEPLOYMENT_FEATURES, *CHANGE_FEATURES}))
@pytest.mark.parametrize("contribution", [0.8, -0.2])
def test_every_metric_reads_as_words(feature: str, contribution: float) -> None:
    """No metric of either model falls back to its code; each says which way and how hard."""
    text = reason_text(_reason(feature, 2.0, contribution))
    what, said = text.split(": ", 1)
    assert not what.startswith(f"{feature} is")  # not the fallback for unknown codes
    direction = "raises" if contribution > 0 else "lowers"
    strength = "strongly" if contribution > 0 else "moderately"
    factor = f"{math.exp(contribution):.2g}"
    assert said == f"{direction} risk {strength} (failure odds x{factor})"


@pytest.mark.parametrize(
    ("confidence", "start", "advice"),
    [
        (0.09, "confidence low (0.09)", "treat the recommendation as a hint"),
        (0.45, "confidence medium (0.45)", "weigh the reasons"),
        (0.8, "confidence high (0.80)", "went as predicted"),
    ],
)
def test_confidence_text_says_how_far_to_trust_it(
    confidence: float, start: str, advice: str
) -> None:
    text = confidence_text(confidence)
    assert text.startswith(f"{start}: ") and advice in text


ASSESSMENT = {
    "request": 7,
    "service": "payments-api",
    "environment": "prod",
    "image": "registry.local/payments-api:1.4.2",
    "probability": 0.0312,
    "recommendation": "approve",
    "confidence": 0.09,
    "model_version": 2,
    "ships": {"commits": 1, "lines_added": 412.0, "lines_deleted": 20.0},
    "reasons": [_reason("la", 412.0, 0.84), _reason("exp", 37.0, -0.3)],
    "similar": [
        {
            "id": "d1",
            "service": "payments-api",
            "environment": "prod",
            "started_at": "2026-10-30T10:00:00+00:00",
            "outcome": "succeeded",
        },
    ],
}


def test_risk_score_prints_reasons_and_confidence_in_words(capsys) -> None:
    _print_assessment(ASSESSMENT)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "probability of failure 3.1%   recommendation APPROVE   (model v2)" in lines[1]
    # The confidence in words, wrapped under the probability.
    assert lines[2].startswith("  confidence low (0.09): treat the recommendation as a hint;")
    assert f"{lines[2]} {lines[3].strip()}" == f"  {confidence_text(0.09)}"
    assert "  ships 1 commit, +412 -20 lines" in lines
    assert "    adds 412 lines: raises risk strongly (failure odds x2.3)" in lines
    # A long reason wraps, its parenthesis kept whole.
    assert (
        "    least experienced author has 37 earlier changes here: lowers risk moderately" in lines
    )
    assert "      (failure odds x0.74)" in lines
    assert CONFIDENCE_BASIS.split(":")[0] in out
    assert "la lowers" not in out and " la " not in out and "log-odds" not in out
    assert max(len(line) for line in lines) <= 100


def test_deploy_status_prints_the_risk_in_words(capsys) -> None:
    request = {
        "number": 7, "service": "payments-api", "image": "payments-api:1.4.2",
        "environment_group": "prod", "status": "pending", "steps": [], "risk": ASSESSMENT,
    }  # fmt: skip
    _show(request, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  risk: 3.1% chance of failure -> APPROVE (model v2)"
    assert lines[2:] == advice_lines(ASSESSMENT, "    ")
    assert (
        lines[-2]
        == "    least experienced author has 37 earlier changes here: lowers risk moderately"
    )
    assert lines[-1] == "      (failure odds x0.74)"
