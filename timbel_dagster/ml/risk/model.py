"""The deployment/change risk model: how likely a change is to introduce a defect.

Model (issue 16: built to hold on projects it has never seen; chosen on development projects
and reported on held-out ones, `benchmarks/ml_risk_projects.py`, docs/benchmarks.md):

- features: `features.engineer` (log1p of the metrics and of ratios such as relative
  churn);
- three members (`rankers`): an L2 logistic regression, a shallow gradient-boosting model
  monotone in size, spread and experience, and a one-feature logistic regression on lines
  added (the LApredict prior); all weight training rows by recency; with a
  repository/project column, its shrunk defect rate is one more feature;
- the members' blend weights are chosen per training set by time-ordered inner validation
  on the training rows only (`selection.choose_blend`: two expanding-window folds, a grid
  of six weightings); the other settings are fixed, the same for every dataset, chosen on
  the development projects only;
- time-aware calibration: the members fitted on the oldest 80 % of the training rows are
  blended on the newest 20 % and that score is Platt-scaled (a logistic regression on the one
  score); the scaling is applied to the members fitted on all rows. Its slope is kept
  positive (`MIN_SLOPE`): on a small or drifting project the newest rows can order the
  changes against the model (measured: one development project's AUC fell from 0.70 to 0.30
  when the slope came out negative), and a calibration step must not reverse the ranking.
  `CalibratedClassifierCV(cv=TimeSeriesSplit)` was measured and rejected: it averages
  models fitted on short prefixes (validation AUC 0.816 against 0.835, mean over the five
  shared datasets) and its Brier score was worse too.

`RiskModel` adds the explanations a reviewer needs: per-metric contributions (exact Shapley
values against the median training change), the most similar past changes, and a confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from timbel_dagster.ml.risk.data import FEATURES, GROUP, LABEL, MIN_TRAIN_ROWS, NEIGHBOURS
from timbel_dagster.ml.risk.explain import Neighbourhood, shapley_contributions, top_reasons
from timbel_dagster.ml.risk.features import engineer, raw_metrics, require_features
from timbel_dagster.ml.risk.rankers import Rankers, blend, fit_rankers
from timbel_dagster.ml.risk.selection import choose_blend

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

RANDOM_STATE = 0
CALIBRATION_FRACTION = 0.2  # the newest share of the training rows the scaling is fitted on
MIN_SLOPE = 1e-3  # Platt slope floor: keeps the members' order, probabilities ~ the base rate

Recommendation = Literal["approve", "review", "reject"]


@dataclass(frozen=True)
class RiskThresholds:
    """Probability cut-offs: approve below `approve_below`, reject at or above `reject_at`,
    review in between. With the defaults on the newest 20 % of the shared datasets, 50-86 %
    of the changes are approved and 3-10 % of those are defective, 2-22 % are rejected and
    55-82 % of those are defective; the rest (11-33 %) go to review."""

    approve_below: float = 0.2
    reject_at: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.approve_below <= self.reject_at <= 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 <= approve_below ({self.approve_below}) <= "
                f"reject_at ({self.reject_at}) <= 1"
            )


@dataclass(frozen=True)
class DecisionCosts:
    """What each outcome of the advice costs, in one unit of the user's choice (engineer
    hours, money); the thresholds follow from them (`thresholds`).

    For a change that fails with probability p, the expected cost of each advice is:
    - approve: p * failed_deployment;
    - review: review + p * (1 - review_catch_rate) * failed_deployment (a review costs its
      time and catches that share of the failures);
    - reject: (1 - p) * held_back (a change that would have been fine waits; a failing one
      costs nothing more).
    The advice is the cheapest. Approve and review cross at p = review / (catch * failed);
    review and reject at p = (held_back - review) / ((1 - catch) * failed + held_back). When
    the first is not below the second, a review is never the cheapest and the cut is where
    approve and reject cost the same, p = held_back / (failed + held_back).

    The defaults (10, 1, 10, 0.5) give the cut-offs the advisor had as fixed numbers
    (approve below 0.2, reject from 0.6). The probabilities must be calibrated for the
    trade-off to mean anything: the model's are (Platt scaling on held-out rows, checked by
    `timbel ml evaluate-risk`)."""

    failed_deployment: float = 10.0
    review: float = 1.0
    held_back: float = 10.0
    review_catch_rate: float = 0.5

    def __post_init__(self) -> None:
        for name in ("failed_deployment", "review", "held_back"):
            if not getattr(self, name) > 0:
                raise ValueError(f"the cost of {name.replace('_', ' ')} must be above 0")
        if not 0.0 < self.review_catch_rate <= 1.0:
            raise ValueError(
                f"review_catch_rate {self.review_catch_rate} must be in (0, 1]: the share of "
                "failures a review catches"
            )

    def thresholds(self) -> RiskThresholds:
        failed, review, held = self.failed_deployment, self.review, self.held_back
        catch = self.review_catch_rate
        approve_below = review / (catch * failed)
        reject_at = (held - review) / ((1 - catch) * failed + held)
        if approve_below >= reject_at:  # a review never pays: one cut between the two
            approve_below = reject_at = held / (failed + held)
        return RiskThresholds(min(approve_below, 1.0), min(max(reject_at, 0.0), 1.0))

    def expected_cost(self, probability: float, advice: Recommendation) -> float:
        """The expected cost of `advice` for a change failing with `probability`."""
        if advice == "approve":
            return probability * self.failed_deployment
        if advice == "review":
            missed = probability * (1 - self.review_catch_rate) * self.failed_deployment
            return self.review + missed
        return (1 - probability) * self.held_back


def recommend(probability: float, thresholds: RiskThresholds | None = None) -> Recommendation:
    """approve / review / reject for one calibrated defect probability."""
    limits = thresholds or RiskThresholds()
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability {probability} is outside [0, 1]")
    if probability < limits.approve_below:
        return "approve"
    return "reject" if probability >= limits.reject_at else "review"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class RiskModel:
    """A fitted risk model. Frames passed in need the metric columns in `features`
    (warehouse names, raw units) and, when `group` is set, that repository column; other
    columns are ignored; NaN means unknown (scored as the training median)."""

    features: tuple[str, ...]
    medians: dict[str, float]
    rankers: Rankers
    platt: tuple[float, float]  # calibrated log-odds = slope * ranker log-odds + intercept
    neighbourhood: Any  # explain.Neighbourhood over the training rows
    n_train: int
    train_defect_rate: float
    group: str | None = None  # the repository/project column the model uses, if any
    random_state: int = RANDOM_STATE
    baseline_log_odds: float = field(default=0.0)  # median change of an unknown repository
    settings: dict[str, Any] | None = None  # how the blend weights were chosen (`describe`)

    def _groups(self, frame: pd.DataFrame) -> list[object] | None:
        if self.group is None:
            return None
        require_features(frame, (self.group,))
        return frame[self.group].tolist()

    def log_odds(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated log-odds that each change is defect-inducing."""
        raw = raw_metrics(frame, self.features, self.medians)
        slope, intercept = self.platt
        return slope * self.rankers.log_odds(engineer(raw), self._groups(frame)) + intercept

    def risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability that each change is defect-inducing, shape (n,)."""
        return _sigmoid(self.log_odds(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """scikit-learn style: shape (n, 2), columns P(clean), P(defect-inducing)."""
        import numpy as np

        p = self.risk(frame)
        return np.column_stack([1 - p, p])

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each metric's (and the repository's, as column `group`) push on each row's
        log-odds: exact Shapley values against the median training change of an unknown
        repository, so a row's values plus `baseline_log_odds` add up to its `log_odds`.
        Costs 2**k model evaluations per row, k the players whose value is not the median
        change's (about 10 ms a row for the deployment model on the sample organisation, up
        to about 2 s for a row with 16 players all off the median): meant for the changes a
        reviewer looks at. At most `explain.MAX_SHAPLEY_FEATURES` players."""

        return shapley_contributions(self, frame)

    def reasons(self, frame: pd.DataFrame, top: int = 3) -> list[list[dict[str, Any]]]:
        """Per row, the `top` largest contributions, largest magnitude first:
        `{"feature", "value", "contribution", "direction": "raises" | "lowers"}`."""

        return top_reasons(self, frame, top)

    def similar(self, row: pd.DataFrame | pd.Series, k: int = 5) -> pd.DataFrame:
        """The k most similar training changes (standardised log metrics, Euclidean), nearest
        first: index = their ids (the training frame's index), columns `distance` and
        `outcome` (1 = defect-inducing)."""
        return self.neighbourhood.similar(row, k)

    def confidence(self, frame: pd.DataFrame) -> np.ndarray:
        """How far to trust each prediction, in [0, 1]: the geometric mean of
        *agreement* (1 - |p - defect rate of the 20 most similar training changes|) and
        *familiarity* (share of training changes whose own 20 nearest neighbours are on
        average at least as far away as this change's; 0 = farther from the training data
        than any training change). Low when the model contradicts local evidence or the
        change is unlike anything it learnt from."""
        return self.neighbourhood.confidence(frame, self.risk(frame))

    def assess(
        self, frame: pd.DataFrame, thresholds: RiskThresholds | None = None, top: int = 3
    ) -> list[dict[str, Any]]:
        """Everything a reviewer sees, per row: id, probability, recommendation, confidence,
        top reasons and the 5 most similar past changes (ids, outcomes, distances)."""
        probabilities = self.risk(frame)
        confidence = self.confidence(frame)
        reasons = self.reasons(frame, top)
        result = []
        for i, p in enumerate(probabilities):
            neighbours = self.similar(frame.iloc[[i]], 5)
            result.append(
                {
                    "id": str(frame.index[i]),
                    "probability": float(p),
                    "recommendation": recommend(float(p), thresholds),
                    "confidence": float(confidence[i]),
                    "reasons": reasons[i],
                    "similar": [
                        {"id": str(idx), "distance": float(d), "outcome": int(o)}
                        for idx, d, o in neighbours.itertuples()
                    ],
                }
            )
        return result


def fit_risk_model(
    train: pd.DataFrame,
    *,
    features: tuple[str, ...] | None = None,
    label: str = LABEL,
    group: str | None = GROUP,
    random_state: int = RANDOM_STATE,
) -> RiskModel:
    """Fit the risk model on training rows in time order (oldest first).

    Args:
        train: metric columns (warehouse names, raw units) and the 0/1 `label` column, oldest
            row first (recency weights and the calibration slice depend on the order).
        features: the metrics to use; default every one of `data.FEATURES` present.
        label: the outcome column.
        group: the repository/project column; used when `train` has it, None to ignore it.
        random_state: seeds the boosting model and the confidence's reference sample.

    Raises:
        ValueError: missing columns, fewer than 50 rows, or one outcome only (in all rows,
            or in the oldest 80 % / newest 20 % used for calibration).
    """
    import numpy as np

    chosen = tuple(features or (f for f in FEATURES if f in train.columns))
    require_features(train, (*chosen, label), "training frame")
    if len(train) < MIN_TRAIN_ROWS:
        raise ValueError(f"training frame has {len(train)} rows; at least {MIN_TRAIN_ROWS}")
    y = train[label].astype(int).to_numpy()
    cut = int(len(train) * (1 - CALIBRATION_FRACTION))
    for part, what in (
        (y, "training frame"),
        (y[:cut], "oldest 80 % of the training frame"),
        (y[cut:], "newest 20 % of the training frame"),
    ):
        if len(np.unique(part)) < 2:
            raise ValueError(f"{what} has only label {int(part[0])}; both outcomes are needed")
    used_group = group if group is not None and group in train.columns else None
    groups = train[used_group].astype(str).tolist() if used_group else None
    typical = train[list(chosen)].astype(float).median().fillna(0.0)  # 0 for all-unknown
    medians = {f: float(v) for f, v in typical.items()}
    engineered = engineer(raw_metrics(train, chosen, medians))
    choice = choose_blend(engineered, y, random_state, groups)
    recent = blend(choice.last_members, choice.weights)
    slope, intercept = _platt(recent, y[choice.last_rows])
    model = RiskModel(
        features=chosen,
        medians=medians,
        rankers=fit_rankers(engineered, y, random_state, groups, choice.weights),
        platt=(slope, intercept),
        neighbourhood=Neighbourhood.fit(train, chosen, medians, y, random_state, NEIGHBOURS),
        n_train=len(train),
        train_defect_rate=float(y.mean()),
        group=used_group,
        random_state=random_state,
        settings=choice.describe(),
    )
    baseline = _median_change(model)
    model.baseline_log_odds = float(model.log_odds(baseline)[0])
    return model


def _platt(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the Platt scaling of `score` to the outcomes `y`; a slope
    below `MIN_SLOPE` is replaced by it, the intercept then matching the mean outcome."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    scaling = LogisticRegression(C=1e4, max_iter=1000).fit(score.reshape(-1, 1), y)
    slope, intercept = float(scaling.coef_[0, 0]), float(scaling.intercept_[0])
    if slope >= MIN_SLOPE:
        return slope, intercept
    rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    return MIN_SLOPE, float(np.log(rate / (1 - rate)) - MIN_SLOPE * score.mean())


def _median_change(model: RiskModel) -> pd.DataFrame:
    """One row: the median training change, of no known repository."""
    import pandas as pd

    row: dict[str, Any] = {f: [model.medians[f]] for f in model.features}
    if model.group:
        row[model.group] = [None]
    return pd.DataFrame(row)
