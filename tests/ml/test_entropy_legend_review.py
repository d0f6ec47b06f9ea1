"""Review: entropy is in bits now (0 to log2(nf)); `timbel ml analyze-changes` still told the
reader ENT lies in 0-1, beside values such as 2.00 for a change spread over four files."""

from __future__ import annotations

from timbel_dagster.cli.ml import LEGEND
from timbel_dagster.ml.changes.metrics import entropy


def test_the_legend_does_not_bound_entropy_by_one() -> None:
    assert entropy([5, 5, 5, 5]) == 2.0
    assert "(0-1)" not in LEGEND
