"""Reliability (calibration) table of predicted probabilities against observed outcomes.

Each bin of predicted probability gets its mean prediction, its observed rate and the Wilson
score interval of that rate. The Wilson interval always contains the observed rate, but in
floating point its bound can land a hair on the wrong side of it (an empty or a full bin:
observed 0 gives a lower bound of about 1e-17), which plotting libraries reject as a negative
error bar; the bounds are therefore clamped to [0, rate] and [rate, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

Z_95 = 1.959963984540054


def wilson_interval(rate: pd.Series, n: pd.Series, z: float = Z_95) -> tuple[pd.Series, pd.Series]:
    """Lower and upper Wilson score bounds of observed `rate`s over `n` trials each."""
    import numpy as np

    n = n.astype(float)
    if (n <= 0).any():
        raise ValueError("every bin of a calibration table needs at least one observation")
    centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low = np.minimum(np.maximum(centre - half, 0.0), rate)
    high = np.maximum(np.minimum(centre + half, 1.0), rate)
    return low, high


def calibration_table(
    probability: pd.Series, label: pd.Series, edges: Sequence[float]
) -> pd.DataFrame:
    """One row per non-empty bin of `probability` (bins by `edges`, first one closed):
    `deployments`, `predicted` (mean probability), `observed` (rate of label 1),
    `observed_lo95` / `observed_hi95` (Wilson 95 % bounds) and the error-bar lengths
    `err_below` / `err_above`, never negative."""
    import pandas as pd

    if len(probability) != len(label):
        raise ValueError(
            f"probability and label differ in length ({len(probability)} vs {len(label)})"
        )
    frame = pd.DataFrame({"probability": probability.to_numpy(), "label": label.to_numpy()})
    frame["bin"] = pd.cut(frame["probability"], sorted(set(edges)), include_lowest=True)
    table = frame.groupby("bin", observed=True).agg(
        deployments=("label", "size"),
        predicted=("probability", "mean"),
        observed=("label", "mean"),
    )
    low, high = wilson_interval(table["observed"], table["deployments"])
    table["observed_lo95"], table["observed_hi95"] = low, high
    table["err_below"] = table["observed"] - low
    table["err_above"] = high - table["observed"]
    return table
