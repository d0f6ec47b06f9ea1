"""Evaluate a change-point detector on TCPD (the Turing Change Point Dataset) as TCPDBench does.

Layout read (the TCPD repository's `datasets/` folder plus its annotations)::

    DIR/annotations.json          series name -> annotator id -> [change point indices]
    DIR/schema.json               (optional) JSON schema every series file must satisfy
    DIR/<name>/<name>.json        one series: n_obs, n_dim, time, series[].raw

Each detector sees the series as TCPDBench's wrappers do: one column per dimension, missing
values (null) filled by linear interpolation (TCPDBench leaves them to each method).
Predictions are cleaned and scored with `tcpd_metrics` (F1 with margin 5, covering), and the
per-series scores are averaged.

The baseline is TCPDBench's `default_binseg` experiment (`binseg.py`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.changepoints.binseg import binseg_default
from timbel_dagster.ml.changepoints.detect import detect_changepoints
from timbel_dagster.ml.changepoints.tcpd_metrics import clean_locations, covering, f_measure

if TYPE_CHECKING:
    import numpy as np

Detector = Callable[[Any], Sequence[int]]


@dataclass(frozen=True)
class TCPDSeries:
    """One TCPD series: its values (n_obs x n_dim) and the annotators' change points."""

    name: str
    values: np.ndarray
    annotations: dict[str, list[int]]

    @property
    def n_obs(self) -> int:
        return int(self.values.shape[0])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None


def _series_values(data: dict[str, Any], path: Path) -> np.ndarray:
    import numpy as np
    import pandas as pd

    columns = []
    for number, variable in enumerate(data["series"]):
        raw = variable["raw"]
        if len(raw) != data["n_obs"]:
            raise ValueError(
                f"{path}: series[{number}] has {len(raw)} values, n_obs is {data['n_obs']}"
            )
        column = pd.Series([math.nan if v is None else float(v) for v in raw], dtype=float)
        if column.isna().all():
            raise ValueError(f"{path}: series[{number}] has no values")
        columns.append(column.interpolate(limit_direction="both").to_numpy())
    return np.column_stack(columns)


def load_directory(path: Path) -> list[TCPDSeries]:
    """Read every series folder of a TCPD directory with its annotations.

    Args:
        path: the directory holding `annotations.json` and one folder per series.

    Returns:
        The series, sorted by name.

    Raises:
        ValueError: when the directory, its annotations.json or any series folder is missing,
            a series file is malformed, or a series has no annotations.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such directory")
    annotations_file = path / "annotations.json"
    if not annotations_file.is_file():
        raise ValueError(f"{path}: missing annotations.json")
    annotations = _read_json(annotations_file)
    folders = sorted(d for d in path.iterdir() if d.is_dir() and (d / f"{d.name}.json").is_file())
    if not folders:
        raise ValueError(f"{path}: no series folders (<name>/<name>.json)")
    validator = None
    if (path / "schema.json").is_file():
        import jsonschema

        validator = jsonschema.Draft7Validator(_read_json(path / "schema.json"))
    series = []
    for folder in folders:
        file = folder / f"{folder.name}.json"
        data = _read_json(file)
        if validator is not None:
            error = next(iter(validator.iter_errors(data)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "top level"
                raise ValueError(f"{file}: {where}: {error.message}")
        name = data["name"]
        if name not in annotations or not annotations[name]:
            raise ValueError(f"{annotations_file}: no annotations for series {name!r}")
        by_annotator = {str(k): [int(i) for i in v] for k, v in annotations[name].items()}
        series.append(TCPDSeries(name, _series_values(data, file), by_annotator))
    return series


def score(series: TCPDSeries, predictions: Sequence[int]) -> dict[str, float]:
    """F1, precision, recall and cover of cleaned `predictions` on one series."""
    locations = clean_locations(predictions, series.n_obs)
    f1, precision, recall = f_measure(series.annotations, locations)
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "cover": covering(series.annotations, locations, series.n_obs),
    }


def evaluate_series(
    series: Sequence[TCPDSeries], detector: Detector = detect_changepoints
) -> dict[str, Any]:
    """Mean F1 and cover of `detector` and of the binseg baseline over `series`."""
    rows = []
    for s in series:
        values = s.values[:, 0] if s.values.shape[1] == 1 else s.values
        ours, baseline = score(s, detector(values)), score(s, binseg_default(s.values))
        rows.append(
            {"name": s.name, **ours, **{f"baseline_binseg_{k}": v for k, v in baseline.items()}}
        )
    count = len(rows)

    def mean(key: str) -> float:
        return round(sum(r[key] for r in rows) / count, 4)

    return {
        "n_series": count,
        "f1": mean("f1"),
        "cover": mean("cover"),
        "baseline_binseg_f1": mean("baseline_binseg_f1"),
        "baseline_binseg_cover": mean("baseline_binseg_cover"),
        "series": rows,
    }


def evaluate_directory(path: Path, detector: Detector = detect_changepoints) -> dict[str, Any]:
    """Evaluate `detector` on every series of a TCPD directory, next to the binseg baseline.

    Args:
        path: a TCPD directory (see the module docstring).
        detector: maps a series (1-D for univariate series, n x d otherwise) to change points.

    Returns:
        `f1`, `cover`, `baseline_binseg_f1`, `baseline_binseg_cover` (means over series),
        `n_series`, and per-series scores under `series`.

    Raises:
        ValueError: see `load_directory`.
    """
    return evaluate_series(load_directory(path), detector)
