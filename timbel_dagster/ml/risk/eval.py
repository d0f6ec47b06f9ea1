"""Evaluation of the risk model against the baselines it must beat, in the same run.

Metrics on the test rows:

- `auc` (ROC AUC) and `pr_auc` (average precision) of the calibrated probability;
- `brier`: mean squared error of the probability;
- `recall_at_20pct_effort`: review changes in the model's order until 20 % of the total
  effort (lines changed, la + ld in raw lines) is spent; the share of defect-inducing changes
  found. The model's order is *risk density* p / (effort + 1), the effort-aware ordering of
  Kamei et al. (EALR) and Yang et al. (FSE 2016): on train-internal validation it found far
  more defects per reviewed line than plain probability order, which spends the budget on a
  few large changes (`recall_at_20pct_effort_probability_order` reports that order too).

Baselines, on the same split: `baseline_la_auc` (LApredict: lines added as the score,
Zeng et al., ISSTA 2021), `baseline_smallest_first_recall_at_20pct_effort` (review the
smallest changes first: Yang et al.'s strong unsupervised effort-aware baseline) and
`baseline_rf_auc` (scikit-learn's RandomForestClassifier with default parameters on the same
raw metrics).

`group` (default: the loader's `group` column, when present) lets the model use the
repository's defect rate; pass None to evaluate on the metrics alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.risk.data import FEATURES, GROUP, LABEL
from timbel_dagster.ml.risk.features import change_effort
from timbel_dagster.ml.risk.model import DecisionCosts, fit_risk_model, recommend

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

EFFORT_BUDGET = 0.2
RESULT_KEYS = (
    "auc",
    "pr_auc",
    "brier",
    "recall_at_20pct_effort",
    "baseline_la_auc",
    "baseline_smallest_first_recall_at_20pct_effort",
    "n_train",
    "n_test",
)


def _arrays(*columns: Any) -> list[np.ndarray]:
    import numpy as np

    arrays = [np.asarray(c, dtype=float) for c in columns]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"inputs differ in length: {[len(a) for a in arrays]}")
    if len(arrays[0]) == 0:
        raise ValueError("no rows to score")
    return arrays


def _both_classes(y: np.ndarray) -> None:
    import numpy as np

    if set(np.unique(y).tolist()) != {0.0, 1.0}:
        raise ValueError(f"labels must contain both 0 and 1, got {sorted(set(y.tolist()))}")


def roc_auc(y: Any, score: Any) -> float:
    """Area under the ROC curve of `score` for 0/1 labels `y`."""
    from sklearn.metrics import roc_auc_score

    labels, scores = _arrays(y, score)
    _both_classes(labels)
    return float(roc_auc_score(labels, scores))


def pr_auc(y: Any, score: Any) -> float:
    """Average precision (area under the precision-recall curve)."""
    from sklearn.metrics import average_precision_score

    labels, scores = _arrays(y, score)
    _both_classes(labels)
    return float(average_precision_score(labels, scores))


def brier(y: Any, probability: Any) -> float:
    """Mean squared difference between the probability and the 0/1 outcome."""
    import numpy as np

    labels, p = _arrays(y, probability)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    return float(np.mean((p - labels) ** 2))


def recall_at_effort(y: Any, effort: Any, score: Any, budget: float = EFFORT_BUDGET) -> float:
    """Share of the defect-inducing changes found when reviewing in descending `score` order
    (ties: smaller effort first, then input order) and stopping before the cumulative effort
    exceeds `budget` of the total. Changes that fit exactly on the budget are reviewed."""
    import numpy as np

    labels, efforts, scores = _arrays(y, effort, score)
    if not 0 < budget <= 1:
        raise ValueError(f"budget must be in (0, 1], not {budget}")
    if (efforts < 0).any():
        raise ValueError("effort must be >= 0")
    if labels.sum() == 0:
        raise ValueError("no defect-inducing change to find (all labels are 0)")
    order = np.lexsort((np.arange(len(scores)), efforts, -scores))
    spent = np.cumsum(efforts[order])
    reviewed = spent <= budget * efforts.sum() + 1e-9
    return float(labels[order][reviewed].sum() / labels.sum())


def risk_density(probability: Any, effort: Any) -> np.ndarray:
    """Expected defects per reviewed line: p / (effort + 1) (the +1 keeps empty changes,
    such as pure renames, finite)."""
    p, efforts = _arrays(probability, effort)
    return p / (efforts + 1.0)


def evaluate(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    features: tuple[str, ...] | None = None,
    label: str = LABEL,
    group: str | None = GROUP,
    random_state: int = 0,
    n_jobs: int | None = None,
    costs: DecisionCosts | None = None,
) -> dict[str, Any]:
    """Fit the risk model on `train` (oldest row first), score `test`, and compute the
    baselines on the same split.

    The advice's cost: each test change gets the advice the costs' cut-offs give for its
    probability, and costs what that advice costs given what really happened (a review of a
    failing change: the review plus the failures it misses). `advice_cost_per_change` is
    the mean, beside approving every change and reviewing every change; the cut-offs come
    from the costs, not from these rows.

    Returns:
        A dict with exactly the keys of `RESULT_KEYS` first, then extras:
        `baseline_rf_auc`, `baseline_rf_pr_auc`, `recall_at_20pct_effort_probability_order`,
        `baseline_la_recall_at_20pct_effort`, `train_defect_rate`, `test_defect_rate`,
        `features`, `group` (the repository column the model used, or None),
        `effort_order`, `fit_seconds`, `settings` (how the blend weights were chosen, in
        words: inner time-ordered folds of the training rows; the Platt scaling is fitted
        on the newest training rows) and `settings_weights`. The forest sees the metrics
        only.

    Raises:
        ValueError: as `fit_risk_model`, or a test frame with one outcome only.
    """
    from sklearn.ensemble import RandomForestClassifier

    chosen = features or tuple(f for f in FEATURES if f in train.columns)
    y_test = test[label].astype(int).to_numpy()
    _both_classes(y_test.astype(float))
    started = time.perf_counter()
    model = fit_risk_model(
        train, features=chosen, label=label, group=group, random_state=random_state
    )
    fit_seconds = time.perf_counter() - started
    p = model.risk(test)
    effort = change_effort(test).to_numpy()
    forest = RandomForestClassifier(random_state=random_state, n_jobs=n_jobs)
    forest.fit(train[list(chosen)].astype(float), train[label].astype(int))
    forest_p = forest.predict_proba(test[list(chosen)].astype(float))[:, 1]
    return {
        "auc": roc_auc(y_test, p),
        "pr_auc": pr_auc(y_test, p),
        "brier": brier(y_test, p),
        "recall_at_20pct_effort": recall_at_effort(y_test, effort, risk_density(p, effort)),
        "baseline_la_auc": roc_auc(y_test, test["la"]),
        "baseline_smallest_first_recall_at_20pct_effort": recall_at_effort(y_test, effort, -effort),
        "n_train": len(train),
        "n_test": len(test),
        "baseline_rf_auc": roc_auc(y_test, forest_p),
        "baseline_rf_pr_auc": pr_auc(y_test, forest_p),
        "recall_at_20pct_effort_probability_order": recall_at_effort(y_test, effort, p),
        "baseline_la_recall_at_20pct_effort": recall_at_effort(y_test, effort, test["la"]),
        "train_defect_rate": float(train[label].astype(int).mean()),
        "test_defect_rate": float(y_test.mean()),
        "features": list(chosen),
        "group": model.group,
        "effort_order": "risk density p/(la+ld+1)",
        "fit_seconds": round(fit_seconds, 2),
        # How the model's settings were chosen: on the training rows only (issue 16 item 1).
        "settings": (model.settings or {}).get("text", ""),
        "settings_weights": (model.settings or {}).get("weights"),
        # Calibration on the later rows: the cost trade-off needs honest probabilities.
        "mean_predicted": float(p.mean()),
        "expected_calibration_error": expected_calibration_error(y_test, p),
        **advice_costs(y_test, p, costs or DecisionCosts()),
    }


def expected_calibration_error(outcomes: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """The mean |predicted - observed| over equal-width probability bins, weighted by how
    many rows fall in each (0: every bin's rate is what was predicted)."""
    import numpy as np

    p = np.asarray(p, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        mask = which == b
        total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(p))


def advice_costs(outcomes: np.ndarray, p: np.ndarray, costs: DecisionCosts) -> dict[str, Any]:
    """The mean cost per change of the advice for probabilities `p`, given the `outcomes`
    (1: the change failed), beside approving all and reviewing all (see `evaluate`)."""
    import numpy as np

    thresholds = costs.thresholds()
    failed = np.asarray(outcomes, dtype=float)
    advice = [recommend(float(q), thresholds) for q in p]

    def mean_cost(kinds: list[str]) -> float:
        # The expected cost at the known outcome (probability 0 or 1) is what it cost.
        paired = zip(kinds, failed, strict=True)
        return float(np.mean([costs.expected_cost(y, kind) for kind, y in paired]))

    return {
        "advice_cost_per_change": mean_cost(advice),
        "baseline_approve_all_cost_per_change": mean_cost(["approve"] * len(failed)),
        "baseline_review_all_cost_per_change": mean_cost(["review"] * len(failed)),
        "advice_shares": {
            kind: advice.count(kind) / len(advice) for kind in ("approve", "review", "reject")
        },
        "advice_costs": {"failed_deployment": costs.failed_deployment, "review": costs.review,
                         "held_back": costs.held_back,
                         "review_catch_rate": costs.review_catch_rate},
    }  # fmt: skip
