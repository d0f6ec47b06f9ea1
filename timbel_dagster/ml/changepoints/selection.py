"""Choosing the change-point rule honestly: a small grid declared in advance, selected by
leave-one-series-out (LOSO) cross-validation over TCPD-format series.

For each series, the rule with the best mean of (F1 + cover) / 2 on the OTHER series is
chosen (ties go to the earlier rule of `GRID`) and scored on the held-out one; the mean over
held-out series is the figure that does not flatter the grid. The rule to ship is the one the
same selection picks on all series. `evaluate` reports both, next to TCPDBench's default
binary segmentation and the detector that reports nothing, per series and on average.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from timbel_dagster.ml.changepoints.detect import (
    SHIPPED_RULE,
    Binseg,
    Detector,
    Rule,
    Vote,
    detect_changepoints,
)
from timbel_dagster.ml.changepoints.tcpd import TCPDSeries, binseg_default, load_directory, score

# Round 3 of the grid (rounds 1 and 2 are in detect.py's docstring), declared before any of
# its new members was scored. Every constant comes from outside these series: TCPDBench's
# default binseg, R changepoint's MBIC, the long-run-variance scale with a first segmentation
# of 20 changes (round 2's first segmentation of `max_changes` left steps beyond the cap in
# the residuals), binseg's changes confirmed by such an optimum, and binseg itself, so that
# selection can always fall back to it. The previous rule (sd/10logn) is out: its factor was
# chosen looking at all 16 series, so its leave-one-series-out figure flatters it, and it
# lost to binseg on held-out TCPD series. Listed in the order of the prior (ties go to the
# earlier); not to be widened after looking at scores.
_LRV5 = Rule(scale="lrv", penalty="mbic", max_changes=5, noise_changes=20)
_LRV20 = Rule(scale="lrv", penalty="mbic", max_changes=20, noise_changes=20)
GRID: tuple[Detector, ...] = (
    Vote((Binseg(), _LRV5), quorum=2),
    Vote((Binseg(), Rule(scale="lrv", penalty="mbic", max_changes=5)), quorum=2),
    Vote((Binseg(), _LRV20), quorum=2),
    _LRV5,
    _LRV20,
    Binseg(),
)
SELECTION_RULE = (
    "the rule with the best mean of (F1 + cover) / 2 over the training series; ties go to "
    "the earlier rule of the grid"
)

Selector = Callable[[Sequence[TCPDSeries], Sequence[Detector]], Detector]


def objective(scores: dict[str, float]) -> float:
    """What selection maximises on one series: the mean of F1 and cover."""
    return (scores["f1"] + scores["cover"]) / 2


def _input(series: TCPDSeries) -> Any:
    return series.values[:, 0] if series.values.shape[1] == 1 else series.values


class ScoreCache:
    """Scores of (series, rule) pairs, each computed once."""

    def __init__(self) -> None:
        self._scores: dict[tuple[str, Detector], dict[str, float]] = {}

    def __call__(self, series: TCPDSeries, rule: Detector) -> dict[str, float]:
        key = (series.name, rule)
        if key not in self._scores:
            self._scores[key] = score(series, detect_changepoints(_input(series), rule))
        return self._scores[key]


def best_rule(
    train: Sequence[TCPDSeries], candidates: Sequence[Detector], scores: ScoreCache | None = None
) -> Detector:
    """The candidate with the best mean objective over `train` (ties: the earlier one).

    Raises:
        ValueError: when there are no training series or no candidates.
    """
    if not train or not candidates:
        raise ValueError("selection needs at least one training series and one candidate")
    scores = scores or ScoreCache()
    means = [sum(objective(scores(s, rule)) for s in train) / len(train) for rule in candidates]
    return candidates[max(range(len(candidates)), key=lambda i: (means[i], -i))]


def leave_one_series_out(
    series: Sequence[TCPDSeries],
    candidates: Sequence[Detector] = GRID,
    selector: Selector | None = None,
    scores: ScoreCache | None = None,
) -> dict[str, Any]:
    """Score each series with the rule `selector` picks on the other series.

    Args:
        series: at least two series with distinct names.
        candidates: the grid.
        selector: (training series, candidates) -> rule; `best_rule` by default.
        scores: a cache shared with other evaluations of the same series.

    Returns:
        `f1` and `cover` (means over held-out series) and per held-out series under `series`:
        name, the chosen rule's label, f1, precision, recall, cover.

    Raises:
        ValueError: when there are fewer than two series or two share a name.
    """
    names = [s.name for s in series]
    if len(series) < 2 or len(set(names)) != len(names):
        raise ValueError("leave-one-series-out needs at least two series with distinct names")
    scores = scores or ScoreCache()
    selector = selector or partial(best_rule, scores=scores)
    rows = []
    for held_out in series:
        train = [s for s in series if s.name != held_out.name]
        rule = selector(train, candidates)
        rows.append({"name": held_out.name, "rule": rule.label, **scores(held_out, rule)})
    return {**_means(rows), "series": rows}


def _means(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("f1", "cover")}


def compare(rows: Sequence[dict[str, Any]], resamples: int = 10_000) -> dict[str, Any]:
    """How the LOSO objective compares with binseg's per series: counts of better, worse and
    equal series, the mean difference and its 90 % bootstrap interval over series (seed 0)."""
    import numpy as np

    ours = np.array([(r["loso_f1"] + r["loso_cover"]) / 2 for r in rows])
    theirs = np.array([(r["baseline_binseg_f1"] + r["baseline_binseg_cover"]) / 2 for r in rows])
    difference = ours - theirs
    draws = np.random.default_rng(0).choice(difference, (resamples, len(difference)))
    low, high = np.percentile(draws.mean(axis=1), [5, 95])
    return {
        "better": int((difference > 1e-9).sum()),
        "worse": int((difference < -1e-9).sum()),
        "equal": int((np.abs(difference) <= 1e-9).sum()),
        "mean_difference": round(float(difference.mean()), 4),
        "bootstrap90": [round(float(low), 4), round(float(high), 4)],
    }


def evaluate(series: Sequence[TCPDSeries], candidates: Sequence[Detector] = GRID) -> dict[str, Any]:
    """The shipped rule in sample, the LOSO figure, binseg and "report nothing", per series.

    Returns:
        `n_series`; `f1`/`cover` of the shipped rule on all series (in sample);
        `loso` (see `leave_one_series_out`); `loso_vs_binseg` (see `compare`);
        `baseline_binseg_*` and `baseline_zero_*`;
        `selection` (the grid, the selection rule, the rule chosen on all series, the shipped
        rule and whether they agree); `series`, one row per series with every figure.
    """
    scores = ScoreCache()
    loso = leave_one_series_out(series, candidates, scores=scores)
    chosen = best_rule(series, candidates, scores)
    rows = []
    for s, held in zip(series, loso["series"], strict=True):
        shipped = scores(s, SHIPPED_RULE)
        binseg, zero = score(s, binseg_default(s.values)), score(s, [])
        rows.append(
            {
                "name": s.name,
                "n_obs": s.n_obs,
                **shipped,
                "loso_rule": held["rule"],
                "loso_f1": held["f1"],
                "loso_cover": held["cover"],
                **{f"baseline_binseg_{k}": v for k, v in binseg.items()},
                **{f"baseline_zero_{k}": v for k, v in zero.items()},
            }
        )

    def mean(key: str) -> float:
        return round(sum(r[key] for r in rows) / len(rows), 4)

    return {
        "n_series": len(rows),
        "f1": mean("f1"),
        "cover": mean("cover"),
        "loso": {"f1": loso["f1"], "cover": loso["cover"]},
        "loso_vs_binseg": compare(rows),
        "baseline_binseg_f1": mean("baseline_binseg_f1"),
        "baseline_binseg_cover": mean("baseline_binseg_cover"),
        "baseline_zero_f1": mean("baseline_zero_f1"),
        "baseline_zero_cover": mean("baseline_zero_cover"),
        "selection": {
            "grid": [rule.label for rule in candidates],
            "rule": SELECTION_RULE,
            "method": "leave-one-series-out",
            "chosen_on_all_series": chosen.label,
            "shipped": SHIPPED_RULE.label,
            "shipped_is_chosen": chosen == SHIPPED_RULE,
            "grid_means": [
                {
                    "rule": rule.label,
                    "f1": round(sum(scores(s, rule)["f1"] for s in series) / len(series), 4),
                    "cover": round(sum(scores(s, rule)["cover"] for s in series) / len(series), 4),
                }
                for rule in candidates
            ],
        },
        "series": rows,
    }


def evaluate_directory(path: Path, candidates: Sequence[Detector] = GRID) -> dict[str, Any]:
    """`evaluate` on every series of a TCPD directory.

    Raises:
        ValueError: see `tcpd.load_directory`; also when it holds fewer than two series.
    """
    return evaluate(load_directory(path), candidates)
