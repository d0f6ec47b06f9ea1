"""Offline change-point detection with one fixed rule (no tuning per series).

The rule:
1. standardise each column of the series to mean 0 and standard deviation 1 (sample sd);
2. find the segmentation that minimises the squared error to piecewise-constant means plus
   a penalty of `PENALTY_FACTOR * log(n)` per change point, exactly (PELT, through ruptures'
   `KernelCPD` with the linear kernel, which is the l2 cost computed in C), with segments of
   at least `MIN_SEGMENT` observations;
3. report the index where each new segment starts (TCPD's convention: 0-based, a change point
   at i means observation i is the first of the new segment).

Why the overall standard deviation and not a noise estimate such as the MAD of first
differences: real series drift and are autocorrelated, so a difference-based noise scale is
tiny next to slow movements and the detector then cuts every trend into many steps. On the
16 TCPD series in /work/shared/data that rule scored F1 <= 0.64 for every penalty tried (1
to 50 times log n), below reporting nothing (0.70). Scaling by the overall spread asks for
changes that are large next to the series' whole variability, which is what people annotate
and what a duration regression is. The penalty, 10·log(n), is five times BIC's 2·log(n) for
a change in mean at unit variance: conservative, so that a noisy pipeline does not raise
false regressions. On those 16 series every factor tried from 3 to 15 (3, 4, 5, 6, 7, 8, 10,
12, 15) beats TCPDBench's default binary segmentation on both F1 and cover, 10 included (F1
0.791 vs 0.758, cover 0.768 vs 0.736; `timbel ml evaluate-changepoints`). The factor was
picked from that range after seeing those series, so the margin is an in-sample figure; it is
one constant for every series, never fitted per series. A known weakness of scaling by the
overall spread: a series that jumps back and forth many times has a large spread, so short
alternating segments need a larger jump to be reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PENALTY_FACTOR = 10.0
MIN_SEGMENT = 5


def standardise(values: Any) -> Any:
    """The series as an (n, d) float array with each column at mean 0 and sd 1.

    Raises:
        ValueError: when the series is empty, not 1-D or 2-D, or holds a missing value.
    """
    import numpy as np

    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"a series must be a non-empty 1-D or 2-D array, got shape {array.shape}")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        raise ValueError(f"the series has a missing or infinite value at index {row}")
    scale = array.std(axis=0, ddof=1) if array.shape[0] > 1 else np.zeros(array.shape[1])
    # A constant column carries no change: keep it at 0 rather than divide by 0.
    return (array - array.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def detect_changepoints(values: Sequence[float] | Sequence[Sequence[float]] | Any) -> list[int]:
    """Where the series changes level, by the fixed rule of this module.

    Args:
        values: the series, shape (n,) or (n, d) for a multivariate series (all dimensions
            are segmented jointly).

    Returns:
        Sorted 0-based indices at which a new segment starts (never 0 or n).

    Raises:
        ValueError: when the series is empty or holds a missing value.
    """
    import ruptures as rpt

    signal = standardise(values)
    n = signal.shape[0]
    if n < 2 * MIN_SEGMENT or not signal.any():
        return []
    algo = rpt.KernelCPD(kernel="linear", min_size=MIN_SEGMENT).fit(signal)
    return [int(b) for b in algo.predict(pen=PENALTY_FACTOR * math.log(n))[:-1]]
