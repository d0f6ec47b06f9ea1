"""Train/test splits of change data and the evaluation of the risk model on CSV files (what
`timbel ml evaluate-risk` runs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.risk.data import (
    GROUP,
    LABEL,
    MIN_TEST_ROWS,
    MIN_TRAIN_ROWS,
    TIME,
    TRAIN_FRACTION,
    RiskDataset,
    load_risk_csv,
    parse_columns_map,
)
from timbel_dagster.ml.risk.eval import evaluate
from timbel_dagster.ml.risk.model import DecisionCosts

if TYPE_CHECKING:
    import pandas as pd


def check_trainable(frame: pd.DataFrame, what: str, minimum: int) -> None:
    """Enough rows and both outcomes, or a ValueError saying which part lacks what."""
    if len(frame) < minimum:
        raise ValueError(f"{what} has {len(frame)} rows; at least {minimum} are needed")
    classes = sorted(frame[LABEL].unique().tolist())
    if len(classes) < 2:
        outcome = "defective" if classes == [1] else "clean"
        raise ValueError(
            f"{what} has only {outcome} changes (label {classes}); both outcomes are needed"
        )


def time_split(
    dataset: RiskDataset, train_fraction: float = TRAIN_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest `train_fraction` of the rows to train, the newest rest to test (stable on ties)."""
    if dataset.time_column is None:
        raise ValueError(f"{dataset.source}: a time column is needed to split in time order")
    needed = max(MIN_TRAIN_ROWS / train_fraction, MIN_TEST_ROWS / (1 - train_fraction))
    needed = math.ceil(needed - 1e-9)
    if len(dataset.frame) < needed:
        raise ValueError(
            f"{dataset.source} has {len(dataset.frame)} rows; at least {needed} are needed to "
            f"split {train_fraction:.0%}/{1 - train_fraction:.0%} into >= {MIN_TRAIN_ROWS} "
            f"training and >= {MIN_TEST_ROWS} test rows"
        )
    ordered = dataset.frame.sort_values(TIME, kind="stable")
    cut = round(len(ordered) * train_fraction)
    train, test = ordered.iloc[:cut], ordered.iloc[cut:]
    check_trainable(train, f"{dataset.source} (oldest {train_fraction:.0%})", MIN_TRAIN_ROWS)
    check_trainable(test, f"{dataset.source} (newest {1 - train_fraction:.0%})", MIN_TEST_ROWS)
    return train, test


def check_time_order(train: RiskDataset, test: RiskDataset) -> bool:
    """True when both have times and the test period does not start before training ends;
    False when either lacks a time column (order cannot be checked)."""
    if train.time_column is None or test.time_column is None:
        return False
    train_end, test_start = train.frame[TIME].max(), test.frame[TIME].min()
    if test_start < train_end:
        raise ValueError(
            f"{test.source} starts at {test_start} before {train.source} ends at {train_end}: "
            "the test period must follow the training period"
        )
    return True


def evaluate_csv(
    *,
    train: str | Path | None = None,
    test: str | Path | None = None,
    data: str | Path | None = None,
    label: str | None = None,
    time: str | None = None,
    columns_map: str | dict[str, str] | None = None,
    profile: str = "auto",
    group: str | None = "auto",
    costs: DecisionCosts | None = None,
) -> dict[str, Any]:
    """Evaluate the risk model on `train` + `test` files, or on one `data` file split in time
    order (oldest 80 % to train). Options as `data.to_risk_frame`; `columns_map` may be
    the CLI's `new=old,...` text. Training rows are sorted by time when both files have a
    time column (then the test period must not start before training ends); otherwise they
    are taken in file order, oldest first.

    Returns:
        `eval.evaluate`'s dict (`group` naming the file's repository column, if
        used) plus `profile`, `split` and `time_order_checked`.

    Raises:
        ValueError: both or neither of `data` and `train`/`test`, one of `train`/`test`
            alone, and every loading or validation error (naming the file).
    """

    if data is not None and (train is not None or test is not None):
        raise ValueError("--data and --train/--test are mutually exclusive: give one or the other")
    if data is None and (train is None or test is None):
        raise ValueError("give --data FILE, or both --train FILE and --test FILE")
    mapping = parse_columns_map(columns_map) if isinstance(columns_map, str) else columns_map
    options: dict[str, Any] = {
        "label": label,
        "time": time,
        "columns_map": mapping,
        "profile": profile,
        "group": group,
    }
    if data is not None:
        dataset = load_risk_csv(data, require_time=True, **options)
        train_frame, test_frame = time_split(dataset)
        split, checked, profile_used = f"time-ordered 80/20 of {data}", True, dataset.profile
        group_column = dataset.group_column
    else:
        assert train is not None and test is not None
        first, second = load_risk_csv(train, **options), load_risk_csv(test, **options)
        if first.features != second.features:
            raise ValueError(
                f"{train} has metrics {list(first.features)} but {test} has "
                f"{list(second.features)}; both files need the same ones"
            )
        checked = check_time_order(first, second)
        train_frame = first.frame.sort_values(TIME, kind="stable") if checked else first.frame
        test_frame = second.frame
        check_trainable(train_frame, str(train), MIN_TRAIN_ROWS)
        check_trainable(test_frame, str(test), MIN_TEST_ROWS)
        split, profile_used = f"{train} -> {test}", first.profile
        group_column = first.group_column if GROUP in test_frame.columns else None
    result = evaluate(
        train_frame, test_frame, label=LABEL, group=GROUP if group_column else None, costs=costs
    )
    return result | {
        "group": group_column,
        "profile": profile_used,
        "split": split,
        "time_order_checked": checked,
    }
