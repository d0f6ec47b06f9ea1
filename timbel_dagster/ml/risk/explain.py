"""Explanations for the risk model: per-metric contributions, similar past changes and a
confidence for each prediction (`words` puts them in words)."""

from __future__ import annotations

import functools
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
# Beyond this many players (metrics and the repository) contributions are refused, not
# approximated. A row whose every metric is off the median needs 2**players evaluations
# whatever the shortcut for null players (`shapley_contributions`): at 16, about 2 s a row
# (measured on a busy 2-core machine); at 20, over 30 s. Wider models are not
# explainable this way even typically: with all 28 deployment features, a recent sample
# deployment has a median of 19 and up to 24 off the median.
MAX_SHAPLEY_FEATURES = 16


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


@functools.cache
def _coalition_weights(m: int) -> np.ndarray:
    """Shapley weight |S|! (m-|S|-1)! / m! by coalition size |S| = 0..m-1."""
    import numpy as np

    weights = np.array([math.factorial(s) * math.factorial(m - s - 1) for s in range(m)]) / (
        math.factorial(m)
    )
    weights.flags.writeable = False  # cached: shared by every caller
    return weights


@dataclass(frozen=True)
class _Coalitions:
    """The 2**k coalitions of k players (a coalition's number is the bit mask of its
    players) and, per player i, the coalitions without i with their Shapley weights."""

    members: np.ndarray  # (2**k, k) bool: coalition x player
    without: np.ndarray  # (k, 2**(k-1)): the numbers of the coalitions lacking player i
    weights: np.ndarray  # (k, 2**(k-1)): their weights |S|! (k-|S|-1)! / k!

    @classmethod
    def of(cls, k: int) -> _Coalitions:
        import numpy as np

        masks = np.arange(2**k)
        members = ((masks[:, None] >> np.arange(k)) & 1).astype(bool)
        without = np.stack([masks[~members[:, i]] for i in range(k)])
        return cls(members, without, _coalition_weights(k)[members.sum(axis=1)[without]])

    def values(self, scores: np.ndarray) -> np.ndarray:
        """Each player's Shapley value, from the score of every coalition (by number)."""
        import numpy as np

        return np.array(
            [
                (scores[without | (1 << i)] - scores[without]) @ weights
                for i, (without, weights) in enumerate(zip(self.without, self.weights, strict=True))
            ]
        )


# Coalition mixes scored per model call: bounded, so memory stays small. Rows are never split
# over calls: a row with more mixes is scored alone.
SHAPLEY_BATCH_MIXES = 16_384


def shapley_contributions(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Exact baseline Shapley values (Sundararajan & Najmi, ICML 2020) of the calibrated
    log-odds. The players are the metrics (and the repository, column `group`); the baseline
    is the median training change of an unknown repository.

    A metric whose value is the baseline's is a null player: joining a coalition leaves the
    model's input as it was, so its value is 0 and the others' are those of the game without
    it (Shapley values are unchanged by removing a null player). So per row only the 2**k
    mixes of its k other players are scored, not 2**players: the same values (to rounding,
    about 1e-15) for fewer model evaluations, whose cost is nearly all in the boosting
    model's trees. Typical rows have several metrics at the median (counts of failed build
    stages, fixes, subsystems): 24x fewer evaluations on the sample organisation's recent
    deployments, 3-12x on the public JIT datasets. The mixes of consecutive rows are scored
    together, `SHAPLEY_BATCH_MIXES` per model call; each row's values do not depend on
    which rows share its call."""
    import numpy as np
    import pandas as pd

    features = list(model.features)
    players = features + (["group"] if model.group else [])
    m = len(players)
    if m > MAX_SHAPLEY_FEATURES:
        raise ValueError(
            f"contributions need at most {MAX_SHAPLEY_FEATURES} players (metrics and the "
            f"repository), not {m}: exact Shapley values cost up to 2**players model "
            "evaluations per row, and no approximation is offered in their place"
        )
    values = raw_metrics(frame, features, model.medians).to_numpy()
    groups = frame[model.group].tolist() if model.group else []
    baseline = np.array([model.medians[f] for f in features])
    # Each row's players that differ from the baseline, by position in `players`; the
    # repository always does (the baseline's is unknown).
    differs = values != baseline
    if model.group:
        differs = np.column_stack([differs, np.ones(len(values), dtype=bool)])
    active = [np.flatnonzero(row) for row in differs]
    games = {k: _Coalitions.of(k) for k in {len(a) for a in active} if k}
    result = np.zeros((len(values), m))  # a row with every player null keeps all 0
    batch: list[int] = []
    mixes = 0
    for r in (r for r in range(len(values)) if len(active[r])):
        size = 2 ** len(active[r])
        if batch and mixes + size > SHAPLEY_BATCH_MIXES:
            _score_rows(model, batch, active, games, values, groups, baseline, result)
            batch, mixes = [], 0
        batch.append(r)
        mixes += size
    if batch:
        _score_rows(model, batch, active, games, values, groups, baseline, result)
    return pd.DataFrame(result, index=frame.index, columns=players)


def _score_rows(
    model: RiskModel,
    rows: list[int],
    active: list[np.ndarray],
    games: dict[int, _Coalitions],
    values: np.ndarray,
    groups: list[object],
    baseline: np.ndarray,
    result: np.ndarray,
) -> None:
    """Score the coalition mixes of `rows` in one model call and write the rows' Shapley
    values into `result`."""
    import numpy as np
    import pandas as pd

    blocks, group_blocks = [], []
    for r in rows:
        members = games[len(active[r])].members
        metrics = active[r][active[r] < len(baseline)]  # the repository, if playing, is last
        block = np.tile(baseline, (len(members), 1))
        block[:, metrics] = np.where(
            members[:, : len(metrics)], values[r, metrics], baseline[metrics]
        )
        blocks.append(block)
        if groups:
            group_blocks.append(np.where(members[:, -1], groups[r], None))
    mixes = pd.DataFrame(np.concatenate(blocks), columns=list(model.features))
    if groups:
        mixes[model.group] = np.concatenate(group_blocks)
    scores = model.log_odds(mixes)
    start = 0
    for r in rows:
        game = games[len(active[r])]
        result[r, active[r]] = game.values(scores[start : start + len(game.members)])
        start += len(game.members)


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
