"""Explanations for the risk model: per-metric contributions, similar past changes and a
confidence for each prediction (`words` puts them in words)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.risk.features import raw_metrics
from timbel_dagster.ml.risk.words import reason_text

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from timbel_dagster.ml.risk.model import RiskModel

REFERENCE_SAMPLE = 2000  # training rows whose neighbour distances define "familiar"
MAX_SHAPLEY_FEATURES = 16  # 2**16 evaluations per row is still well under a second


def _as_frame(row: pd.DataFrame | pd.Series) -> pd.DataFrame:
    import pandas as pd

    return row.to_frame().T if isinstance(row, pd.Series) else row


@dataclass
class Neighbourhood:
    """The training changes in standardised log-metric space, with their outcomes."""

    features: tuple[str, ...]
    medians: dict[str, float]
    scaler: Any
    index: Any  # sklearn NearestNeighbors over the training rows
    outcomes: np.ndarray
    ids: np.ndarray
    reference: np.ndarray  # sorted mean distances of sampled training rows to their k nearest
    k: int

    @classmethod
    def fit(
        cls,
        train: pd.DataFrame,
        features: tuple[str, ...],
        medians: dict[str, float],
        y: np.ndarray,
        random_state: int,
        k: int,
    ) -> Neighbourhood:
        import numpy as np
        from sklearn.neighbors import NearestNeighbors
        from sklearn.preprocessing import StandardScaler

        logs = np.log1p(raw_metrics(train, features, medians).to_numpy())
        scaler = StandardScaler().fit(logs)
        space = scaler.transform(logs)
        index = NearestNeighbors().fit(space)
        rng = np.random.RandomState(random_state)
        sample = rng.choice(len(space), min(REFERENCE_SAMPLE, len(space)), replace=False)
        k_ref = min(k, len(space) - 1)
        distances, _ = index.kneighbors(space[sample], n_neighbors=k_ref + 1)
        reference = np.sort(distances[:, 1:].mean(axis=1))  # column 0 is the row itself
        ids = np.asarray(train.index.astype(str))
        return cls(tuple(features), medians, scaler, index, np.asarray(y), ids, reference, k)

    def _space(self, frame: pd.DataFrame) -> np.ndarray:
        import numpy as np

        return self.scaler.transform(
            np.log1p(raw_metrics(frame, self.features, self.medians).to_numpy())
        )

    def similar(self, row: pd.DataFrame | pd.Series, k: int = 5) -> pd.DataFrame:
        import pandas as pd

        frame = _as_frame(row)
        if len(frame) != 1:
            raise ValueError(f"similar() takes one change, got {len(frame)} rows")
        if not 1 <= k <= len(self.ids):
            raise ValueError(f"k must be between 1 and {len(self.ids)} (training rows), not {k}")
        distances, positions = self.index.kneighbors(self._space(frame), n_neighbors=k)
        return pd.DataFrame(
            {"distance": distances[0], "outcome": self.outcomes[positions[0]].astype(int)},
            index=pd.Index(self.ids[positions[0]], name="id"),
        )

    def confidence(self, frame: pd.DataFrame, probabilities: np.ndarray) -> np.ndarray:
        import numpy as np

        k = min(self.k, len(self.ids))
        distances, positions = self.index.kneighbors(self._space(frame), n_neighbors=k)
        agreement = 1.0 - np.abs(probabilities - self.outcomes[positions].mean(axis=1))
        spread = distances.mean(axis=1)
        wider = len(self.reference) - np.searchsorted(self.reference, spread, side="left")
        familiarity = wider / len(self.reference)
        return np.sqrt(np.clip(agreement, 0, 1) * familiarity)


def _coalition_weights(m: int) -> np.ndarray:
    """Shapley weight |S|! (m-|S|-1)! / m! by coalition size |S| = 0..m-1."""
    import numpy as np

    return np.array([math.factorial(s) * math.factorial(m - s - 1) for s in range(m)]) / (
        math.factorial(m)
    )


# Coalition mixes scored per model call (rows x 2**players): bounded, so memory stays small.
SHAPLEY_BATCH_MIXES = 16_384


def shapley_contributions(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Exact baseline Shapley values (Sundararajan & Najmi, ICML 2020) of the calibrated
    log-odds. The players are the metrics (and the repository, column `group`); the baseline
    is the median training change of an unknown repository. All 2**players mixes of the row
    and the baseline are scored, several rows' mixes per model call (the same values as one
    row per call; the time is in the trees, 2**players evaluations per row)."""
    import numpy as np
    import pandas as pd

    features = list(model.features)
    players = features + (["group"] if model.group else [])
    m = len(players)
    if m > MAX_SHAPLEY_FEATURES:
        raise ValueError(f"contributions need at most {MAX_SHAPLEY_FEATURES} players, not {m}")
    values = raw_metrics(frame, features, model.medians).to_numpy()
    groups = frame[model.group].tolist() if model.group else []
    baseline = np.array([model.medians[f] for f in features])
    masks = np.arange(2**m)
    members = ((masks[:, None] >> np.arange(m)) & 1).astype(bool)  # coalition x player
    sizes = members.sum(axis=1)
    weights = _coalition_weights(m)
    result = np.zeros((len(values), m))
    batch = max(1, SHAPLEY_BATCH_MIXES // 2**m)  # rows per model call
    for first in range(0, len(values), batch):
        rows = range(first, min(first + batch, len(values)))
        mixes = pd.DataFrame(
            np.concatenate(
                [np.where(members[:, : len(features)], values[r], baseline) for r in rows]
            ),
            columns=features,
        )
        if model.group:
            mixes[model.group] = np.concatenate(
                [np.where(members[:, -1], groups[r], None) for r in rows]
            )
        scored = model.log_odds(mixes).reshape(len(rows), 2**m)
        for r, scores in zip(rows, scored, strict=True):
            for i in range(m):
                without = ~members[:, i]
                gain = scores[masks[without] | (1 << i)] - scores[without]
                result[r, i] = float((weights[sizes[without]] * gain).sum())
    return pd.DataFrame(result, index=frame.index, columns=players)


def top_reasons(model: RiskModel, frame: pd.DataFrame, top: int) -> list[list[dict[str, Any]]]:
    """The `top` largest contributions per row, largest magnitude first; `value` is the
    metric's value (the repository name for `group`)."""
    import numpy as np

    contributions = shapley_contributions(model, frame)
    values = raw_metrics(frame, model.features, model.medians)
    reasons = []
    for r, (_, pushes) in enumerate(contributions.iterrows()):
        order = np.argsort(-np.abs(pushes.to_numpy()), kind="stable")[:top]
        row: list[dict[str, Any]] = []
        for i in order:
            name = str(pushes.index[i])
            value = (
                str(frame[model.group].iloc[r])
                if model.group and name == "group"
                else float(values[name].iloc[r])
            )
            push = float(pushes.iloc[i])
            reason = {
                "feature": name,
                "value": value,
                "contribution": push,
                "direction": "raises" if push > 0 else "lowers",
            }
            row.append(reason | {"text": reason_text(reason)})
        reasons.append(row)
    return reasons
