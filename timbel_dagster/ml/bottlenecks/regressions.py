"""Duration regressions: slowdowns found by `detect_changepoints` in a series of run times."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.changepoints.detect import detect_changepoints

if TYPE_CHECKING:
    import pandas as pd

MIN_REGRESSION = 0.10  # a slowdown smaller than 10 % is not worth a report


def median(values: Any) -> float:
    import numpy as np

    return float(np.median(values))


def regressions(pipeline: str, stage: str | None, series: pd.DataFrame) -> list[dict[str, Any]]:
    """Slowdowns in one duration series.

    Args:
        pipeline: the pipeline's name.
        stage: the stage's name, or None for the whole pipeline.
        series: columns started_at, seconds, execution_id (any order; rows without seconds
            are dropped).

    Returns:
        One dict per change point where the median of the segment after it is at least
        `MIN_REGRESSION` above the median of the segment before it: pipeline, stage, index
        (in the series sorted by start), at, execution_id, before/after medians, pct_change.
    """

    series = series.dropna(subset=["seconds"]).sort_values("started_at", kind="stable")
    values = series["seconds"].to_numpy(dtype=float)
    found: list[dict[str, Any]] = []
    if len(values) == 0:
        return found
    cps = detect_changepoints(values)
    bounds = [0, *cps, len(values)]
    for i, cp in enumerate(cps):
        before = float(median(values[bounds[i] : cp]))
        after = float(median(values[cp : bounds[i + 2]]))
        if before <= 0 or after < before * (1 + MIN_REGRESSION):
            continue
        row = series.iloc[cp]
        found.append(
            {
                "pipeline": pipeline,
                "stage": stage,
                "index": int(cp),
                "at": row["started_at"].isoformat()
                if row["started_at"] == row["started_at"]
                else None,
                "execution_id": str(row["execution_id"]),
                "before_median_seconds": round(before, 1),
                "after_median_seconds": round(after, 1),
                "pct_change": round(100 * (after / before - 1), 1),
            }
        )
    return found
