"""The two rankers inside the risk model and how they are fitted.

A logistic regression (standardised features, L2, C=0.5) and a shallow gradient-boosting
model (`HistGradientBoostingClassifier`, depth 3, 500 steps of 0.03, 60 % of the features per
split), averaged in log-odds. Both weight each training row by recency (the weight halves
every half of the training rows back in time), because what makes a change risky drifts.
When the changes carry a repository/project, its shrunk defect rate is one more feature.
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


@dataclass
class Rankers:
    """The fitted logistic regression and boosting model."""

    logistic: Any
    boosting: Any
    edges: list[Any]  # quantile_edges of the training matrix, for the boosting model
    group_rates: dict[str, float] | None = None  # None: fitted without groups
    group_prior: float = 0.0

    def matrix(self, engineered: pd.DataFrame, groups: Sequence[object] | None) -> np.ndarray:
        import numpy as np

        values = engineered.to_numpy(dtype=float)
        if self.group_rates is None:
            return values
        known = groups if groups is not None else [None] * len(values)
        encoded = encode_groups(known, self.group_rates, self.group_prior)
        return np.column_stack([values, encoded])

    def log_odds(
        self, engineered: pd.DataFrame, groups: Sequence[object] | None = None
    ) -> np.ndarray:
        """Mean of the two rankers' log-odds."""
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
        clipped = [np.clip(q, 1e-6, 1 - 1e-6) for q in p]
        return sum(np.log(q / (1 - q)) for q in clipped) / 2


def fit_rankers(
    engineered: pd.DataFrame,
    y: np.ndarray,
    random_state: int,
    groups: Sequence[object] | None = None,
) -> Rankers:
    """Both rankers on rows in time order (oldest first), recency-weighted."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    weights = recency_weights(len(engineered))
    rankers = Rankers(None, None, [])
    if groups is not None:
        rankers.group_rates, rankers.group_prior = group_rates([str(g) for g in groups], y, weights)
    values = rankers.matrix(engineered, groups)
    rankers.logistic = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=LOGISTIC_C, solver="newton-cholesky", max_iter=200),
    )
    rankers.logistic.fit(values, y, logisticregression__sample_weight=weights)
    rankers.edges = quantile_edges(values)
    rankers.boosting = HistGradientBoostingClassifier(random_state=random_state, **BOOSTING)
    with threadpool_limits(limits=1, user_api="openmp"):
        rankers.boosting.fit(to_bins(values, rankers.edges), y, sample_weight=weights)
    return rankers
