"""Offline change-point detection with one fixed detector (no tuning per series).

The shipped detector (`SHIPPED_RULE`) is a vote of two (`ensemble.py`): TCPDBench's default binary
segmentation (`binseg.py`: greedy splits of the z-scored series, at most 5, each worth at least
3·log n) proposes change points, and the penalised optimum of a `Rule` on a long-run-variance
scale must confirm each one within TCPDBench's margin of 5 observations; the vote reports
binseg's location. A vote can only report fewer changes than binseg: it removes binseg's
points that a detector which knows the noise's autocorrelation does not find, which raises
precision, what TCPDBench's F1 (index 0 counted in both sets, every false alarm costs) and
covering reward.

A `Rule` is applied the same way to every series:
1. measure each column's scale (`noise.py`): its overall standard deviation (`sd`), a robust
   noise scale (`robust`), or the long-run standard deviation (`lrv`) of the residuals of the
   best piecewise-constant fit with `noise_changes` change points: sigma² (1 + phi) / (1 - phi)
   with phi their lag-1 autocorrelation, so that a trend, random walk or seasonal swing (smooth
   residuals, phi near 1) needs a much larger step to count than white noise does;
2. for every k from 0 to the cap `max_changes`, the k change points that minimise the
   squared error to piecewise-constant means, exactly, with segments of at least
   `min_segment` observations (ruptures' `KernelCPD` with the linear kernel: the l2 cost in
   C; PELT for the penalised optimum, dynamic programming for a fixed k, needed only when the
   cap binds or for MBIC);
3. keep the k that minimises that squared error in units of the scale plus a penalty per
   change point: BIC ((d + 1)·log n for d columns), MBIC ((d + 2)·log n plus the log of each
   segment's length, R changepoint's `penalty="MBIC"` for d = 1) or `factor`·log n. When the
   unconstrained penalised optimum has more changes than the cap, the best segmentation with
   exactly `max_changes` changes is kept instead;
4. report the index where each new segment starts (TCPD's convention: 0-based, a change point
   at i means observation i is the first of the new segment).

How the detector was chosen (`ml/changepoints/selection.py`, `timbel ml
evaluate-changepoints`): from a small grid declared in code before it was scored, the member
with the best mean of (F1 + cover) / 2 over the training series, ties to the earlier member.
Leave-one-series-out (LOSO) over the 16 TCPD series in /work/shared/data gives the honest
figure: each series is scored with the member chosen on the other 15.

Measured on the 16 series (`timbel ml evaluate-changepoints ../shared/data/changepoints-tcpd`,
TCPDBench's F1 and cover, margin 5; baselines in the same run), grid of round 3:

| | F1 | cover |
|---|---|---|
| leave-one-series-out (the honest figure) | 0.8413 | 0.7868 |
| TCPDBench's default binseg (`binseg.py`) | 0.7575 | 0.7362 |
| report nothing | 0.6956 | 0.6080 |

Every fold and all 16 series pick the shipped vote, so LOSO and in sample agree. Per series
against binseg ((F1 + cover) / 2): better on 5 (bank, businv, construction, global_co2,
usd_isk), worse on none, equal on 11; mean difference +0.067, 90 % bootstrap interval over
series [+0.016, +0.134].

History, three rounds of candidates, each declared before it was scored:
1. 12 rules, scale sd or robust x penalty MBIC, 5·log n or 10·log n x cap 5 or 20. Chosen:
   sd/10logn/max5, LOSO F1 0.759 / cover 0.739 against binseg's 0.758 / 0.736, a tie. Its
   factor had been picked after looking at the same 16 series; uncapped, the same rule
   scored F1 0.640 / cover 0.577 on 16 held-out TCPD series where binseg scored 0.699 / 0.623.
   The robust scale lost clearly (it follows slow movements, so trends are cut into steps);
   so did a difference-based scale (F1 <= 0.64 for every penalty from 1 to 50·log n).
2. 7 members: lrv with MBIC or BIC and cap 5, lrv/MBIC with cap 20 (first segmentation:
   `max_changes` changes), binseg confirmed by lrv/MBIC/max5, a majority of binseg,
   sd/10logn and lrv/MBIC, sd/10logn, binseg. Selection kept sd/10logn (in sample F1 0.791 /
   cover 0.768), LOSO F1 0.739 / cover 0.725, below binseg. The lrv rules alone scored below
   binseg (F1 0.70-0.72): with a first segmentation of only 5 changes the steps beyond it
   (run_log has 8) stay in the residuals and inflate the scale, while on a strong linear trend
   the residuals are nearly white and the trend is still cut. The vote with binseg was the
   best member whose constants did not come from these series (F1 0.777 / cover 0.759).
3. 6 members: the votes of binseg with lrv/MBIC (first segmentation of 20 changes, caps 5 and
   20; and round 2's), those two lrv rules alone, and binseg. sd/10logn left the grid because
   its factor was fitted on all 16 series. Chosen: the vote with lrv20/mbic/max5.
Mean-and-variance costs were not tried: TCPDBench's default binseg is `cpt.mean` (a change in
mean), and a normal mean-and-variance cost cuts random walks and trends even more readily.
Known limits (synthetic checks, 5 draws each): on a random walk of 1000 steps the vote keeps
1 to 4 of binseg's 4-5 points, on a linear trend 10 noise sds high 0 to 3 of its 3, on
exponential growth 1 of its 3; a drifting seasonal series gets none (binseg: 1), a step in
AR(1) noise is found, and two 2-sd steps in white noise are both found in 4 draws of 5.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from timbel_dagster.ml.changepoints.ensemble import Binseg, Vote
from timbel_dagster.ml.changepoints.noise import SCALES, as_array, column_scales

MIN_SEGMENT = 5


@dataclass(frozen=True)
class Rule:
    """One penalised-optimum setting: the same for every series it runs on.

    Attributes:
        scale: "sd", "robust" or "lrv" (see `noise.py`).
        penalty: per change point, "bic" ((d + 1)·log n for d columns: a new mean per column
            and a location), "mbic" ((d + 2)·log n plus the log segment lengths, R
            changepoint's MBIC for d = 1) or a factor such as "5logn" (that many log n).
        max_changes: the most change points reported.
        min_segment: the fewest observations in a segment.
        noise_changes: change points in the first segmentation whose residuals give the
            `lrv` scale (None: `max_changes`). More than the cap, so that steps beyond the
            cap do not stay in the residuals and inflate the scale.
    """

    scale: str = "sd"
    penalty: str = "mbic"
    max_changes: int = 5
    min_segment: int = MIN_SEGMENT
    noise_changes: int | None = None

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.penalty not in ("mbic", "bic") and not (
            self.penalty.endswith("logn") and _is_positive(self.penalty[:-4])
        ):
            raise ValueError(
                f"penalty must be 'mbic', 'bic' or '<factor>logn', got {self.penalty!r}"
            )
        if self.max_changes < 0 or self.min_segment < 1:
            raise ValueError("max_changes must be >= 0 and min_segment >= 1")
        if self.noise_changes is not None and (self.scale != "lrv" or self.noise_changes < 1):
            raise ValueError("noise_changes is for the lrv scale only and must be >= 1")

    @property
    def label(self) -> str:
        scale = self.scale if self.noise_changes is None else f"{self.scale}{self.noise_changes}"
        return f"{scale}/{self.penalty}/max{self.max_changes}/min{self.min_segment}"

    def per_change(self, n: int, d: int = 1) -> float:
        """The penalty per change point for a series of n observations in d columns."""
        if self.penalty == "mbic":
            factor = d + 2.0
        elif self.penalty == "bic":
            factor = d + 1.0
        else:
            factor = float(self.penalty[:-4])
        return factor * math.log(n)

    def detect(self, values: Any) -> list[int]:
        return _penalised_optimum(values, self)


Detector = Rule | Binseg | Vote


def _is_positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


# Chosen by leave-one-series-out selection on the 16 TCPD series (see the module docstring).
SHIPPED_RULE: Detector = Vote(
    (Binseg(), Rule(scale="lrv", penalty="mbic", max_changes=5, noise_changes=20)), quorum=2
)


def standardise(
    values: Any, scale: str = "sd", min_segment: int = MIN_SEGMENT, changes: int = 5
) -> Any:
    """The series as an (n, d) float array, centred and divided by each column's scale.

    Raises:
        ValueError: when the series is empty, not 1-D or 2-D, or holds a missing value.
    """
    import numpy as np

    array = as_array(values)
    scales = column_scales(array, scale, min_segment, changes)
    # A constant column carries no change: keep it at 0 rather than divide by 0.
    return (array - array.mean(axis=0)) / np.where(scales > 0, scales, 1.0)


def _squared_error(cumsum: Any, cumsum2: Any, bounds: Sequence[int]) -> float:
    """Sum over segments [bounds[i], bounds[i+1]) of the squared error to the segment mean."""
    total = 0.0
    for start, end in itertools.pairwise(bounds):
        s, s2 = cumsum[end] - cumsum[start], cumsum2[end] - cumsum2[start]
        total += float((s2 - s * s / (end - start)).sum())
    return total


def detect_changepoints(
    values: Sequence[float] | Sequence[Sequence[float]] | Any, rule: Detector | None = None
) -> list[int]:
    """Where the series changes level, by `rule` (the shipped rule unless told).

    Args:
        values: the series, shape (n,) or (n, d) for a multivariate series (all dimensions
            are segmented jointly).
        rule: the detector's setting; the same for every series.

    Returns:
        Sorted 0-based indices at which a new segment starts (never 0 or n).

    Raises:
        ValueError: when the series is empty or holds a missing value.
    """
    return (rule or SHIPPED_RULE).detect(values)


def _penalised_optimum(values: Any, rule: Rule) -> list[int]:
    import numpy as np
    import ruptures as rpt

    noise_changes = rule.max_changes if rule.noise_changes is None else rule.noise_changes
    signal = standardise(values, rule.scale, rule.min_segment, noise_changes)
    n, d = signal.shape
    most = min(rule.max_changes, n // rule.min_segment - 1)
    if most < 1 or not signal.any():
        return []
    per_change = rule.per_change(n, d)
    algo = rpt.KernelCPD(kernel="linear", min_size=rule.min_segment).fit(signal)
    unconstrained = algo.predict(pen=per_change)  # PELT: linear time on most series
    if len(unconstrained) - 1 > most:
        # More changes than the cap clear the penalty: the best `most` of them, rather than
        # a penalised choice among segmentations too coarse to fit the series.
        return [int(b) for b in algo.predict(n_bkps=most)[:-1]]
    if rule.penalty != "mbic":
        # With a constant penalty the optimum over k <= cap is the unconstrained one.
        return [int(b) for b in unconstrained[:-1]]
    algo.predict(n_bkps=most)  # one dynamic programme gives every k up to `most`
    zeros = np.zeros((1, signal.shape[1]))
    cumsum = np.vstack([zeros, np.cumsum(signal, axis=0)])
    cumsum2 = np.vstack([zeros, np.cumsum(signal * signal, axis=0)])
    best, best_cost = [n], math.inf
    for k in range(most + 1):
        bounds = [0, *(algo.segmentations_dict[k] if k else [n])]
        cost = _squared_error(cumsum, cumsum2, bounds) + k * per_change
        if rule.penalty == "mbic":
            cost += sum(math.log(b - a) for a, b in itertools.pairwise(bounds))
        if cost < best_cost - 1e-9:
            best, best_cost = bounds[1:], cost
    return [int(b) for b in best[:-1]]
