"""The model's view of a change: log-scaled metrics plus a few ratios the JIT literature
found telling (relative churn, churn per file, share of unique prior changes, ...).

Plain functions, so that the fitted model pickles without custom classes and the Dagster
code location imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def require_features(frame: pd.DataFrame, features: Sequence[str], what: str = "frame") -> None:
    """A ValueError listing every metric column the frame lacks."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks metric column(s) {', '.join(missing)}")


def raw_metrics(
    frame: pd.DataFrame, features: Sequence[str], medians: Mapping[str, float]
) -> pd.DataFrame:
    """The metrics as floats >= 0, unknown values (NaN) replaced by the training median."""
    import pandas as pd

    require_features(frame, features)
    values = frame[list(features)].apply(pd.to_numeric, errors="coerce").astype(float)
    return values.fillna(dict(medians)).clip(lower=0)


def engineer(raw: pd.DataFrame) -> pd.DataFrame:
    """log1p of every metric and of the ratios below (only those whose inputs are present).

    Relative churn (la+ld)/lt and its parts come from Nagappan & Ball (ICSE 2005) and
    Kamei et al. (who normalise LA/LD by LT for the same reason); per-file sizes separate one
    large edit from a sweeping rename; normalised entropy is Kamei's entropy / log2(nf).
    """
    import numpy as np
    import pandas as pd

    columns = set(raw.columns)
    extra: dict[str, pd.Series] = {}
    nf = raw["nf"].clip(lower=1) if "nf" in columns else None
    if {"la", "ld"} <= columns:
        churn = raw["la"] + raw["ld"]
        extra["churn"] = churn
        extra["add_share"] = raw["la"] / (churn + 1)
        if "lt" in columns:
            extra["rel_churn"] = churn / (raw["lt"] + 1)
            extra["rel_la"] = raw["la"] / (raw["lt"] + 1)
            extra["rel_ld"] = raw["ld"] / (raw["lt"] + 1)
        if nf is not None:
            extra["la_per_file"] = raw["la"] / nf
            extra["churn_per_file"] = churn / nf
    if nf is not None:
        if "lt" in columns:
            extra["lt_per_file"] = raw["lt"] / nf
        if "nuc" in columns:
            extra["nuc_per_file"] = raw["nuc"] / nf
        if "entropy" in columns:
            spread = np.log2(nf.where(nf > 1, 2.0))
            extra["entropy_norm"] = (raw["entropy"] / spread).where(nf > 1, 0.0)
    if "exp" in columns:
        for part in ("rexp", "sexp"):
            if part in columns:
                extra[f"{part}_share"] = raw[part] / (raw["exp"] + 1)
    both = pd.concat([raw, pd.DataFrame(extra, index=raw.index)], axis=1)
    return np.log1p(both.clip(lower=0))


def change_effort(frame: pd.DataFrame) -> pd.Series:
    """Review effort of each change in lines: la + ld (raw lines, as the loader gives them;
    for Kamei's normalised release that is (la + ld) * lt * nf of the original columns)."""
    require_features(frame, ("la", "ld"))
    return (frame["la"].astype(float) + frame["ld"].astype(float)).clip(lower=0)


GROUP_PRIOR_WEIGHT = 20.0  # pseudo-changes at the overall rate added to every group


def group_rates(
    groups: Sequence[str], y: Sequence[int], weights: Sequence[float]
) -> tuple[dict[str, float], float]:
    """Each group's (repository's) weighted defect rate, shrunk towards the overall rate by
    `GROUP_PRIOR_WEIGHT` pseudo-changes so that a group with few changes says little; and the
    overall rate, used for groups never seen in training."""
    import pandas as pd

    table = pd.DataFrame({"g": list(groups), "y": list(y), "w": list(weights)})
    table["yw"] = table["y"] * table["w"]
    prior = float(table["yw"].sum() / table["w"].sum())
    sums = table.groupby("g")[["yw", "w"]].sum()
    shrunk = (sums["yw"] + GROUP_PRIOR_WEIGHT * prior) / (sums["w"] + GROUP_PRIOR_WEIGHT)
    return {str(g): float(r) for g, r in shrunk.items()}, prior


def encode_groups(groups: Sequence[object], rates: Mapping[str, float], prior: float):
    """Log-odds of each row's group rate (the overall rate for unknown or missing groups)."""
    import numpy as np

    rate = np.array([rates.get(str(g), prior) if g is not None else prior for g in groups])
    rate = np.clip(rate, 1e-3, 1 - 1e-3)
    return np.log(rate / (1 - rate))
