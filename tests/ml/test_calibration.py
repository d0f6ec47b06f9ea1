"""ml/calibration: the reliability table the notebook plots, with Wilson bounds that are
never on the wrong side of the observed rate (matplotlib refuses negative error bars)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from timbel_dagster.ml.risk.calibration import calibration_table, wilson_interval


@pytest.mark.parametrize(
    ("rate", "n", "low", "high"),
    [
        # Wilson (1927) / Agresti & Coull (1998) table values, z = 1.96.
        (0.5, 10, 0.2366, 0.7634),
        (0.0, 10, 0.0, 0.2775),
        (1.0, 10, 0.7225, 1.0),
        (0.1, 100, 0.0552, 0.1744),
        (0.0, 1, 0.0, 0.7935),
    ],
)
def test_wilson_bounds(rate: float, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(pd.Series([rate]), pd.Series([n]))
    assert lo.iloc[0] == pytest.approx(low, abs=1e-4)
    assert hi.iloc[0] == pytest.approx(high, abs=1e-4)


def test_bins_with_no_failure_or_only_failures_have_no_negative_error_bars() -> None:
    # The notebook's failure on today's sample: a bin whose deployments all succeeded has
    # a lower Wilson bound of ~1e-17 above its observed rate of 0.
    probability = pd.Series([0.01] * 37 + [0.03] * 5 + [0.5] * 3 + [0.9] * 2)
    label = pd.Series([0] * 37 + [0] * 5 + [1, 0, 1] + [1, 1])
    table = calibration_table(probability, label, [0.0, 0.02, 0.05, 0.2, 0.6, 1.0])

    assert list(table["deployments"]) == [37, 5, 3, 2]
    assert list(table["observed"].round(4)) == [0.0, 0.0, 0.6667, 1.0]
    assert (table["err_below"] >= 0).all() and (table["err_above"] >= 0).all()
    assert (table["observed_lo95"] <= table["observed"]).all()
    assert (table["observed"] <= table["observed_hi95"]).all()
    assert table["observed_lo95"].iloc[0] == 0.0 and table["observed_hi95"].iloc[-1] == 1.0


def test_random_tables_never_give_negative_error_bars() -> None:
    generator = np.random.default_rng(3)
    for _ in range(200):
        size = int(generator.integers(1, 60))
        probability = pd.Series(generator.random(size))
        label = pd.Series((generator.random(size) < probability).astype(int))
        table = calibration_table(probability, label, [0, 0.1, 0.3, 0.5, 0.8, 1])
        assert (table[["err_below", "err_above"]].to_numpy() >= 0).all()
        assert table["deployments"].sum() == size


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"probability and label differ in length \(2 vs 1\)"):
        calibration_table(pd.Series([0.1, 0.2]), pd.Series([1]), [0, 1])
