"""The noise scale a change-point penalty is measured in, per column of a series.

- `sd`: the overall standard deviation. Steps inflate it, so big steps make the detector
  stricter; a trend or random walk has a sd of the order of its range.
- `robust`: 1.4826 x the MAD of the residuals around a centred running median of
  2 x `min_segment` + 1 points, never above the sd. It ignores steps, but follows every slow
  movement, so a trend's residuals look like small white noise and the trend is cut into
  many steps.
- `lrv`: the long-run standard deviation of the residuals of a first segmentation, the scale
  under which a sum of n dependent errors has variance n·scale² (what a CUSUM test divides
  by under dependence). The residuals are those of the exact best piecewise-constant fit with
  `changes` change points (l2, on the sd-standardised series); their variance sigma² and
  pooled lag-1 autocorrelation phi (pairs inside one segment only) give
  sigma² (1 + phi) / (1 - phi), the AR(1) long-run variance, with phi clipped to
  [0, `MAX_PHI`]. Steps that the first fit places leave white residuals (phi near 0: the
  scale is the noise's); a trend, a random walk or a seasonal swing leaves smooth residuals
  around a few flat segments (phi near 1: the scale grows by up to
  sqrt((1 + MAX_PHI) / (1 - MAX_PHI)), about 14), so the movement a flat segment cannot fit
  is not taken for change points. It does not stop a long random walk from being cut: with 20
  flat segments of an 800-step walk the scale is about half the walk's sd (the optimum alone
  then reports up to its cap), which is why the shipped detector only uses it to confirm
  binseg's points. Steps beyond `changes` stay in the residuals and make the
  scale larger, so the error is on the side of reporting fewer changes, which TCPDBench's F1
  (every false alarm lowers precision) and covering reward.
"""

from __future__ import annotations

import itertools
from typing import Any

MAX_PHI = 0.99  # keeps the long-run variance finite for a random walk (phi estimated near 1)
SCALES = ("sd", "robust", "lrv")


def as_array(values: Any) -> Any:
    """The series as an (n, d) float array.

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
    return array


def column_scales(array: Any, scale: str, min_segment: int = 5, changes: int = 5) -> Any:
    """Each column's scale (see the module docstring); 0 for a constant column.

    Args:
        array: the series, shape (n, d).
        scale: one of `SCALES`.
        min_segment: the fewest observations in a segment.
        changes: change points in the first segmentation (`lrv` only).

    Raises:
        ValueError: for an unknown scale.
    """
    import numpy as np

    sd = array.std(axis=0, ddof=1) if array.shape[0] > 1 else np.zeros(array.shape[1])
    if scale == "sd":
        return sd
    if scale == "robust":
        return _robust(array, sd, min_segment)
    if scale == "lrv":
        return _long_run(array, sd, min_segment, changes)
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


def _robust(array: Any, sd: Any, min_segment: int) -> Any:
    import numpy as np
    import pandas as pd

    window = 2 * min_segment + 1
    running = pd.DataFrame(array).rolling(window, center=True, min_periods=1).median()
    residuals = array - running.to_numpy()
    mad = np.median(np.abs(residuals - np.median(residuals, axis=0)), axis=0)
    robust = 1.4826 * mad
    # Ties (durations rounded to the second) can leave a MAD of 0: fall back to the sd.
    return np.where(robust > 0, np.minimum(robust, sd), sd)


def _long_run(array: Any, sd: Any, min_segment: int, changes: int) -> Any:
    import numpy as np
    import ruptures as rpt

    n = array.shape[0]
    k = min(changes, n // min_segment - 1)
    if k < 1 or not (sd > 0).any():
        return sd
    standard = (array - array.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    bounds = [0, *rpt.KernelCPD(kernel="linear", min_size=min_segment).fit(standard).predict(k)]
    residuals = np.empty_like(array)
    inside = np.ones(n, dtype=bool)  # True where t and t - 1 share a segment
    for start, end in itertools.pairwise(bounds):
        residuals[start:end] = array[start:end] - array[start:end].mean(axis=0)
        inside[start] = False
    sigma2 = (residuals**2).sum(axis=0) / max(n - len(bounds) + 1, 1)
    lagged = (residuals[1:] * residuals[:-1])[inside[1:]].sum(axis=0)
    energy = (residuals[1:][inside[1:]] ** 2).sum(axis=0)
    phi = np.clip(
        np.divide(lagged, energy, out=np.zeros_like(lagged), where=energy > 0), 0, MAX_PHI
    )
    long_run = np.sqrt(sigma2 * (1 + phi) / (1 - phi))
    return np.where((sd > 0) & (long_run > 0), long_run, sd)
