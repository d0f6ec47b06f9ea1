"""The rankers inside the risk model and how they are fitted.

Three members, blended in log-odds with weights `choose_blend` picks on the training rows:

- a logistic regression (standardised features, L2, C=0.5);
- a shallow gradient-boosting model (`HistGradientBoostingClassifier`, depth 3, 500 steps of
  0.03, 60 % of the features per split) constrained to be monotone where every study and
  every dataset agree on the direction (`MONOTONE`: risk rises with the size and spread of a
  change, falls with the author's experience), so that it cannot learn a bump of one
  project's training period that does not hold later;
- the *size* member: a one-feature logistic regression on log lines added. Ranking by lines
  added (LApredict, Zeng et al., ISSTA 2021) is the baseline the model must beat on every
  project; with it in the blend the model keeps that prior where the other members learn
  little (small or drifting projects).

All members weight each training row by recency (the weight halves every half of the
training rows back in time), because what makes a change risky drifts. When the changes
carry a repository/project, its shrunk defect rate is one more feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.risk.features import encode_groups, group_rates

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LOGISTIC_C = 0.5
BOOSTING = {
    "max_iter": 500,
    "learning_rate": 0.03,
    "max_depth": 3,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "max_features": 0.6,
}
RECENCY_HALF_LIFE = 0.5  # as a share of the training rows
# +1: risk may only rise with the feature, -1: only fall. Only where the direction is the
# same in Kamei et al. (TSE 2013), McIntosh & Kamei (TSE 2018) and all our datasets; the
# other features (history, ratios, deployment features) stay free. So do the touched files'
# past fixes and recent churn: risk rose with them where they were measured (Kim et al., ICSE
# 2007; Nagappan & Ball, ICSE 2005), but they are in neither Kamei study nor in any of our
# datasets, so the rule cannot be checked for them (Kamei's own history metrics, ndev, age
# and nuc, are free as well).
MONOTONE = {
    "la": 1,
    "ld": 1,
    "churn": 1,
    "nf": 1,
    "ns": 1,
    "nd": 1,
    "entropy": 1,
    "exp": -1,
    "rexp": -1,
    "sexp": -1,
}
MEMBERS = ("logistic", "boosting", "size")
SIZE_FEATURE = "la"  # the size member's one feature (log1p of lines added)
DEFAULT_WEIGHTS = (1.0, 1.0, 1.0)


def recency_weights(n: int) -> np.ndarray:
    """1 for the newest row, halving every `RECENCY_HALF_LIFE * n` rows back."""
    import numpy as np

    age = (n - 1 - np.arange(n)) / max(n * RECENCY_HALF_LIFE, 1.0)
    return 0.5**age


def quantile_edges(values: np.ndarray, bins: int = 255) -> list[np.ndarray]:
    """Per column, the unweighted quantile cut points the boosting model bins on."""
    import numpy as np

    cuts = np.linspace(0, 1, bins + 1)[1:-1]
    return [np.unique(np.quantile(values[:, j], cuts)) for j in range(values.shape[1])]


def to_bins(values: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Bin numbers (at most 255 distinct per column). Binned before boosting because
    HistGradientBoosting's own binning with sample weights computes weighted percentiles
    one at a time (measured: 9 s of an 11 s fit on 3,000 rows); on <= 255 distinct values it
    takes its exact path, so the model equals one with unweighted binning."""
    import numpy as np

    return np.column_stack(
        [np.searchsorted(e, values[:, j], side="right") for j, e in enumerate(edges)]
    ).astype(float)


def blend(members: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weighted mean of the members' log-odds (columns of `members`, in `MEMBERS` order;
    a missing size member's weight is dropped)."""
    import numpy as np

    used = np.asarray(weights[: members.shape[1]], dtype=float)
    if used.sum() <= 0:
        raise ValueError(f"blend weights {tuple(weights)} give the members no weight")
    return members @ used / used.sum()


@dataclass
class Rankers:
    """The fitted members and their blend weights."""

    logistic: Any
    boosting: Any
    edges: list[Any]  # quantile_edges of the training matrix, for the boosting model
    group_rates: dict[str, float] | None = None  # None: fitted without groups
    group_prior: float = 0.0
    size: Any = None  # None: no lines-added column (or a model stored before it existed)
    size_column: int = -1  # the size feature's column in `matrix`
    weights: tuple[float, ...] = DEFAULT_WEIGHTS

    def matrix(self, engineered: pd.DataFrame, groups: Sequence[object] | None) -> np.ndarray:
        import numpy as np

        values = engineered.to_numpy(dtype=float)
        if self.group_rates is None:
            return values
        known = groups if groups is not None else [None] * len(values)
        encoded = encode_groups(known, self.group_rates, self.group_prior)
        return np.column_stack([values, encoded])

    def members(
        self, engineered: pd.DataFrame, groups: Sequence[object] | None = None
    ) -> np.ndarray:
        """Each member's log-odds, one column per member (`MEMBERS` order)."""
        import numpy as np
        from threadpoolctl import threadpool_limits

        values = self.matrix(engineered, groups)
        # One OpenMP thread: on frames this small, starting and spinning threads costs more
        # than it saves (measured 5x slower with 2 threads on a busy 2-core machine).
        with threadpool_limits(limits=1, user_api="openmp"):
            p = [
                self.logistic.predict_proba(values)[:, 1],
                self.boosting.predict_proba(to_bins(values, self.edges))[:, 1],
            ]
        if self.size is not None:
            p.append(self.size.predict_proba(values[:, [self.size_column]])[:, 1])
        clipped = [np.clip(q, 1e-6, 1 - 1e-6) for q in p]
        return np.column_stack([np.log(q / (1 - q)) for q in clipped])

    def log_odds(
        self, engineered: pd.DataFrame, groups: Sequence[object] | None = None
    ) -> np.ndarray:
        """The members' log-odds blended with `weights`."""
        return blend(self.members(engineered, groups), self.weights)


def fit_rankers(
    engineered: pd.DataFrame,
    y: np.ndarray,
    random_state: int,
    groups: Sequence[object] | None = None,
    weights: tuple[float, ...] = DEFAULT_WEIGHTS,
) -> Rankers:
    """The members on rows in time order (oldest first), recency-weighted."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    sample_weight = recency_weights(len(engineered))
    rankers = Rankers(None, None, [], weights=tuple(weights))
    if groups is not None:
        rankers.group_rates, rankers.group_prior = group_rates(
            [str(g) for g in groups], y, sample_weight
        )
    values = rankers.matrix(engineered, groups)
    rankers.logistic = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=LOGISTIC_C, solver="newton-cholesky", max_iter=200),
    )
    rankers.logistic.fit(values, y, logisticregression__sample_weight=sample_weight)
    rankers.edges = quantile_edges(values)
    columns = [*map(str, engineered.columns), *(["group"] if groups is not None else [])]
    rankers.boosting = HistGradientBoostingClassifier(
        random_state=random_state,
        monotonic_cst=[MONOTONE.get(c, 0) for c in columns],
        **BOOSTING,
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        rankers.boosting.fit(to_bins(values, rankers.edges), y, sample_weight=sample_weight)
    if SIZE_FEATURE in columns:
        rankers.size_column = columns.index(SIZE_FEATURE)
        rankers.size = LogisticRegression(max_iter=200)
        rankers.size.fit(values[:, [rankers.size_column]], y, sample_weight=sample_weight)
    return rankers
