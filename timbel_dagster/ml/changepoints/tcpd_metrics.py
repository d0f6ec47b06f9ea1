"""TCPDBench's F1 and covering metrics for change-point detection.

These follow `analysis/scripts/metrics.py` of alan-turing-institute/TCPDBench and Section 4 of
van den Burg & Williams, "An Evaluation of Change Point Detection Algorithms" (2020):

- change points are 0-based indices of the FIRST observation of a new segment;
- index 0 is added to every annotator's set and to the predictions (so a method that reports
  nothing still gets the trivial "change point" at the start right);
- F1: a prediction is a true positive for an annotation when it lies within `margin` (5) of it,
  each prediction counted at most once (closest first). Precision is measured against the
  union of all annotators' points; recall is averaged over annotators;
- cover: Arbelaez et al.'s segmentation covering of each annotator's segmentation by the
  predicted one, averaged over annotators.

Before scoring, TCPDBench's `summarize.py` drops predicted indices outside [1, n_obs - 2]
(several methods report the end points by default); `clean_locations` does the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

MARGIN = 5


def true_positives(
    truth: Iterable[int], predictions: Iterable[int], margin: int = MARGIN
) -> set[int]:
    """The points of `truth` matched by a prediction within `margin`, without double counting.

    Args:
        truth: annotated change points.
        predictions: predicted change points.
        margin: the largest distance at which a prediction still counts.

    Returns:
        The matched annotated points.
    """
    unused = set(predictions)
    matched: set[int] = set()
    # TCPDBench iterates over a Python set; sorting makes the (rare) ties deterministic.
    for tau in sorted(set(truth)):
        close = sorted((abs(tau - x), x) for x in unused if abs(tau - x) <= margin)
        if not close:
            continue
        matched.add(tau)
        unused.remove(close[0][1])
    return matched


def f_measure(
    annotations: Mapping[str, Iterable[int]],
    predictions: Iterable[int],
    margin: int = MARGIN,
    alpha: float = 0.5,
) -> tuple[float, float, float]:
    """TCPDBench's F-measure of `predictions` against several annotators.

    Args:
        annotations: annotator id -> that annotator's change points.
        predictions: predicted change points.
        margin: matching margin in observations.
        alpha: 0.5 gives F1.

    Returns:
        (F, precision, recall).

    Raises:
        ValueError: when there are no annotators.
    """
    if not annotations:
        raise ValueError("f_measure needs at least one annotator")
    per_annotator = [{*points, 0} for points in annotations.values()]
    predicted = {*predictions, 0}
    union = set().union(*per_annotator)
    precision = len(true_positives(union, predicted, margin)) / len(predicted)
    recall = sum(
        len(true_positives(points, predicted, margin)) / len(points) for points in per_annotator
    ) / len(per_annotator)
    f = precision * recall / (alpha * recall + (1 - alpha) * precision)
    return f, precision, recall


def partition_from_cps(locations: Iterable[int], n_obs: int) -> list[set[int]]:
    """The segments of [0, n_obs - 1] that start at the given change points."""
    starts = sorted({loc for loc in locations if 0 < loc < n_obs})
    bounds = [0, *starts, n_obs]
    return [set(range(a, b)) for a, b in itertools.pairwise(bounds)]


def overlap(a: set[int], b: set[int]) -> float:
    """Jaccard index of two sets."""
    return len(a & b) / len(a | b)


def cover_single(predicted: list[set[int]], truth: list[set[int]]) -> float:
    """Covering of the segmentation `truth` by `predicted` (Arbelaez et al. 2010, eq. 8)."""
    total = sum(map(len, predicted))
    if total != sum(map(len, truth)):
        raise ValueError("both segmentations must cover the same observations")
    return sum(len(r) * max(overlap(r, rp) for rp in predicted) for r in truth) / total


def covering(
    annotations: Mapping[str, Iterable[int]], predictions: Iterable[int], n_obs: int
) -> float:
    """Segmentation covering of the annotators' segmentations, averaged over annotators.

    Args:
        annotations: annotator id -> that annotator's change points.
        predictions: predicted change points.
        n_obs: length of the series.

    Returns:
        The mean covering in [0, 1].

    Raises:
        ValueError: when there are no annotators.
    """
    if not annotations:
        raise ValueError("covering needs at least one annotator")
    predicted = partition_from_cps(predictions, n_obs)
    scores = [cover_single(predicted, partition_from_cps(a, n_obs)) for a in annotations.values()]
    return sum(scores) / len(scores)


def clean_locations(locations: Iterable[int], n_obs: int) -> list[int]:
    """Sorted unique predictions inside [1, n_obs - 2], as TCPDBench keeps them."""
    return sorted({int(x) for x in locations if 1 <= x < n_obs - 1})
