"""The change-point detector, TCPDBench's metrics, the TCPD evaluation and its CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import missing_service
from timbel_dagster.cli.app import main
from timbel_dagster.ml.changepoints.detect import detect_changepoints
from timbel_dagster.ml.changepoints.tcpd import binseg_default, evaluate_directory, load_directory
from timbel_dagster.ml.changepoints.tcpd_metrics import (
    clean_locations,
    cover_single,
    covering,
    f_measure,
    overlap,
    partition_from_cps,
    true_positives,
)

TCPD = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "changepoints-tcpd"


def _steps(
    levels: list[float], lengths: list[int], noise: float = 1.0, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = np.concatenate([np.full(n, level) for level, n in zip(levels, lengths, strict=True)])
    return means + rng.normal(0.0, noise, len(means))


# -- the detector -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levels", "lengths", "expected"),
    [
        ([0.0], [300], []),
        ([0.0, 3.0], [100, 100], [100]),
        ([10.0, 13.0, 9.0], [60, 80, 60], [60, 140]),
        ([0.0, 4.0, 0.0, 4.0], [80, 80, 80, 80], [80, 160, 240]),
        # a duration series: 600 s builds that become 900 s, with 5 % noise
        ([600.0, 900.0], [120, 80], [120]),
    ],
)
def test_detects_known_level_shifts(
    levels: list[float], lengths: list[int], expected: list[int]
) -> None:
    noise = 30.0 if levels[0] == 600.0 else 1.0
    for seed in range(3):
        found = detect_changepoints(_steps(levels, lengths, noise, seed))
        assert len(found) == len(expected), (seed, found)
        assert all(abs(f - e) <= 3 for f, e in zip(found, expected, strict=True)), (seed, found)


def test_pure_noise_gives_no_change_points_in_most_series() -> None:
    false_alarms = sum(
        bool(detect_changepoints(np.random.default_rng(s).normal(size=400))) for s in range(50)
    )
    assert false_alarms <= 2


def test_multivariate_series_are_segmented_jointly() -> None:
    first = _steps([0.0, 0.0], [100, 100], seed=1)
    second = _steps([0.0, 3.0], [100, 100], seed=2)
    found = detect_changepoints(np.column_stack([first, second]))
    assert len(found) == 1 and abs(found[0] - 100) <= 3


@pytest.mark.parametrize("values", [[5.0] * 50, [1.0, 2.0, 3.0], list(range(9))])
def test_constant_or_short_series_have_no_change_points(values: list[float]) -> None:
    assert detect_changepoints(values) == []


def test_a_missing_value_is_refused_with_its_index() -> None:
    values = [1.0] * 30
    values[17] = float("nan")
    with pytest.raises(ValueError, match="index 17"):
        detect_changepoints(values)


# -- TCPDBench's metrics: the examples of analysis/scripts/metrics.py -----------------------


@pytest.mark.parametrize(
    ("truth", "predictions", "expected"),
    [
        ({1, 10, 20, 23}, {3, 8, 20}, {1, 10, 20}),
        ({1, 10, 20, 23}, {1, 3, 8, 20}, {1, 10, 20}),
        ({1, 10, 20, 23}, {1, 3, 5, 8, 20}, {1, 10, 20}),
        (set(), {1, 2, 3}, set()),
        ({1, 2, 3}, set(), set()),
    ],
)
def test_true_positives(truth: set[int], predictions: set[int], expected: set[int]) -> None:
    assert true_positives(truth, predictions) == expected


@pytest.mark.parametrize(
    ("annotations", "predictions", "expected"),
    [
        ({1: [10, 20], 2: [11, 20], 3: [10], 4: [0, 5]}, [10, 20], 1.0),
        ({1: [], 2: [10], 3: [50]}, [10], 0.9090909090909091),
        ({1: [], 2: [10], 3: [50]}, [], 0.8),
    ],
)
def test_f_measure(annotations: dict, predictions: list[int], expected: float) -> None:
    assert f_measure(annotations, predictions)[0] == pytest.approx(expected, abs=1e-12)


def test_f_measure_precision_uses_the_union_and_recall_the_mean_over_annotators() -> None:
    # predictions {0, 10, 40}: 0 and 10 match the union {0, 10, 50}; 40 is a false alarm.
    # recall: annotator 1 {0} 1/1, annotator 2 {0, 10} 2/2, annotator 3 {0, 50} 1/2.
    f, precision, recall = f_measure({1: [], 2: [10], 3: [50]}, [10, 40])
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx((1 + 1 + 0.5) / 3)
    assert f == pytest.approx(2 * precision * recall / (precision + recall))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [({1, 2, 3}, set(), 0.0), ({1, 2, 3}, {2, 5}, 0.25), ({1, 2, 3}, {1, 2, 3}, 1.0)],
)
def test_overlap(a: set[int], b: set[int], expected: float) -> None:
    assert overlap(a, b) == expected


@pytest.mark.parametrize(
    ("locations", "n_obs", "expected"),
    [
        ([], 5, [{0, 1, 2, 3, 4}]),
        ([3, 5], 8, [{0, 1, 2}, {3, 4}, {5, 6, 7}]),
        ([1, 2, 7], 8, [{0}, {1}, {2, 3, 4, 5, 6}, {7}]),
        ([0, 4], 6, [{0, 1, 2, 3}, {4, 5}]),
    ],
)
def test_partition_from_cps(locations: list[int], n_obs: int, expected: list[set[int]]) -> None:
    assert partition_from_cps(locations, n_obs) == expected


@pytest.mark.parametrize(
    ("predicted", "truth", "expected"),
    [
        ([{1, 2, 3}, {4, 5}, {6}], [{1, 2, 3}, {4, 5, 6}], 0.8333333333333334),
        ([{1, 2, 3, 4}, {5, 6}], [{1, 2, 3, 4, 5, 6}], 0.6666666666666666),
        ([{1, 2}, {3, 4}, {5, 6}], [{1, 2, 3}, {4, 5, 6}], 0.6666666666666666),
        ([{1, 2, 3, 4, 5, 6}], [{1}, {2}, {3}, {4, 5, 6}], 0.3333333333333333),
    ],
)
def test_cover_single(predicted: list[set[int]], truth: list[set[int]], expected: float) -> None:
    assert cover_single(predicted, truth) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("annotations", "predictions", "expected"),
    [
        ({1: [10, 20], 2: [10], 3: [0, 5]}, [10, 20], 0.7962962962962963),
        ({1: [], 2: [10], 3: [40]}, [10], 0.7954144620811286),
        ({1: [], 2: [10], 3: [40]}, [], 0.8189300411522634),
    ],
)
def test_covering(annotations: dict, predictions: list[int], expected: float) -> None:
    assert covering(annotations, predictions, 45) == pytest.approx(expected, abs=1e-12)


def test_predictions_at_the_ends_are_dropped_as_tcpdbench_does() -> None:
    assert clean_locations([0, 1, 5, 5, 98, 99, 100], 100) == [1, 5, 98]


def test_binseg_baseline_keeps_at_most_five_changes_above_the_mbic_penalty() -> None:
    assert binseg_default(np.random.default_rng(3).normal(size=300)) == []
    two = binseg_default(_steps([0.0, 5.0, 0.0], [100, 100, 100]))
    assert [round(c, -1) for c in two] == [100, 200]
    many = _steps([0.0, 6.0] * 5, [30] * 10)
    assert len(binseg_default(many)) == 5


# -- the evaluation on TCPD -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tcpd_result() -> dict:
    if not (TCPD / "annotations.json").is_file():
        missing_service(f"the TCPD series are missing at {TCPD}")
    return evaluate_directory(TCPD)


def test_detector_beats_default_binseg_on_tcpd(tcpd_result: dict) -> None:
    assert tcpd_result["n_series"] == 16
    assert tcpd_result["f1"] > tcpd_result["baseline_binseg_f1"]
    assert tcpd_result["cover"] > tcpd_result["baseline_binseg_cover"]
    # and both beat reporting nothing, TCPDBench's "zero" method
    nothing = evaluate_directory(TCPD, detector=lambda values: [])
    assert tcpd_result["f1"] > nothing["f1"] and tcpd_result["cover"] > nothing["cover"]
    assert nothing["f1"] == pytest.approx(0.6956, abs=1e-4)


def test_multivariate_series_is_read_with_all_its_dimensions() -> None:
    if not (TCPD / "annotations.json").is_file():
        missing_service(f"the TCPD series are missing at {TCPD}")
    run_log = next(s for s in load_directory(TCPD) if s.name == "run_log")
    assert run_log.values.shape == (376, 2)
    assert set(run_log.annotations) == {"6", "7", "8", "10", "12"}


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def small_tcpd(tmp_path: Path) -> Path:
    """Two TCPD series with their annotations and the schema."""
    if not (TCPD / "annotations.json").is_file():
        missing_service(f"the TCPD series are missing at {TCPD}")
    names = ["nile", "quality_control_1"]
    for name in names:
        (tmp_path / name).mkdir()
        shutil.copy(TCPD / name / f"{name}.json", tmp_path / name / f"{name}.json")
    shutil.copy(TCPD / "schema.json", tmp_path / "schema.json")
    annotations = json.loads((TCPD / "annotations.json").read_text())
    (tmp_path / "annotations.json").write_text(json.dumps({n: annotations[n] for n in names}))
    return tmp_path


def test_cli_prints_scores_as_json(small_tcpd: Path) -> None:
    result = CliRunner().invoke(main, ["ml", "evaluate-changepoints", str(small_tcpd), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"f1", "cover", "n_series", "baseline_binseg_f1", "baseline_binseg_cover"} <= set(report)
    assert report["n_series"] == 2
    assert [s["name"] for s in report["series"]] == ["nile", "quality_control_1"]
    assert all(0.0 <= report[k] <= 1.0 for k in ("f1", "cover", "baseline_binseg_f1"))


def test_cli_prints_a_table(small_tcpd: Path) -> None:
    result = CliRunner().invoke(main, ["ml", "evaluate-changepoints", str(small_tcpd)])
    assert result.exit_code == 0, result.output
    assert "quality_control_1" in result.output and "2 series: F1" in result.output


def _error(arguments: list[str]) -> str:
    result = CliRunner().invoke(main, ["ml", "evaluate-changepoints", *arguments, "--json"])
    assert result.exit_code == 2, result.output
    return result.output


def test_cli_names_a_missing_directory(tmp_path: Path) -> None:
    assert f"{tmp_path / 'absent'}: no such directory" in _error([str(tmp_path / "absent")])


def test_cli_names_a_directory_without_series(tmp_path: Path) -> None:
    (tmp_path / "annotations.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    assert "no series folders" in _error([str(tmp_path)])


def test_cli_names_missing_annotations(small_tcpd: Path) -> None:
    (small_tcpd / "annotations.json").unlink()
    assert "missing annotations.json" in _error([str(small_tcpd)])


def test_cli_names_a_series_without_annotations(small_tcpd: Path) -> None:
    (small_tcpd / "annotations.json").write_text(json.dumps({"nile": {"6": [28]}}))
    assert "no annotations for series 'quality_control_1'" in _error([str(small_tcpd)])


def test_cli_names_a_series_file_that_breaks_the_schema(small_tcpd: Path) -> None:
    path = small_tcpd / "nile" / "nile.json"
    data = json.loads(path.read_text())
    del data["n_obs"]
    path.write_text(json.dumps(data))
    message = _error([str(small_tcpd)])
    assert "nile.json" in message and "'n_obs' is a required property" in message
