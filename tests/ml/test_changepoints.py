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
from timbel_dagster.ml.changepoints import selection
from timbel_dagster.ml.changepoints.detect import (
    SHIPPED_RULE,
    Binseg,
    Rule,
    Vote,
    detect_changepoints,
)
from timbel_dagster.ml.changepoints.noise import column_scales
from timbel_dagster.ml.changepoints.tcpd import (
    TCPDSeries,
    binseg_default,
    evaluate_directory,
    load_directory,
)
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


def test_a_linear_drift_is_not_cut_into_many_steps() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        drift = np.linspace(0.0, 10.0, 400) + rng.normal(size=400)
        assert len(detect_changepoints(drift)) <= 2, seed
        walk = np.cumsum(rng.normal(size=1000))
        assert len(detect_changepoints(walk)) <= 5, seed


def test_no_more_changes_than_the_cap() -> None:
    # eleven steps that each clear the penalty: the cap keeps five of them, not none
    many = _steps([0.0, 10.0] * 6, [100] * 12)
    capped = Rule(scale="lrv", penalty="mbic", max_changes=5, noise_changes=20)
    found = detect_changepoints(many, capped)
    assert len(found) == 5
    assert all(min(abs(f - e) for e in range(100, 1200, 100)) <= 2 for f in found)
    wider = Rule(scale="sd", penalty="10logn", max_changes=20)
    found = detect_changepoints(many, wider)
    assert len(found) == 11
    assert all(abs(f - e) <= 2 for f, e in zip(found, range(100, 1200, 100), strict=True))
    # the shipped vote reports no more than binseg, which stops at five
    assert len(detect_changepoints(many)) <= 5


def test_the_shipped_vote_reports_only_what_binseg_and_the_optimum_both_find() -> None:
    rng = np.random.default_rng(4)
    for values in (
        _steps([0.0, 3.0, 0.0], [100, 100, 100], seed=4),
        np.cumsum(rng.normal(size=600)),
        np.linspace(0.0, 10.0, 400) + rng.normal(size=400),
    ):
        voted = detect_changepoints(values)
        members = [m.detect(values) for m in SHIPPED_RULE.members]
        assert set(voted) <= set(members[0])  # binseg's locations
        assert all(min((abs(v - p) for p in members[1]), default=99) <= 5 for v in voted)


@pytest.mark.parametrize(
    ("found", "quorum", "expected"),
    [
        (([10, 50, 90], [12, 88], [49]), 2, [10, 50, 90]),
        (([10, 50, 90], [12, 88], [49]), 3, []),
        (([10, 50], [30, 70], [31, 71]), 2, [30, 70]),  # agreement without the first member
        (([10, 14], [12], []), 2, [10]),  # one point of a member confirms one point only
    ],
)
def test_a_vote_keeps_the_points_a_quorum_reports_within_the_margin(
    found: tuple[list[int], ...], quorum: int, expected: list[int]
) -> None:
    class Fixed:
        def __init__(self, points: list[int]) -> None:
            self.points, self.label = points, f"fixed{points}"

        def detect(self, values: object) -> list[int]:
            return self.points

    vote = Vote(tuple(Fixed(points) for points in found), quorum=quorum)  # type: ignore[arg-type]
    assert vote.detect([0.0] * 100) == expected
    with pytest.raises(ValueError, match="quorum must be"):
        Vote((Binseg(),), quorum=2)


def test_the_binseg_member_is_the_baseline() -> None:
    values = _steps([0.0, 4.0, 1.0], [80, 80, 80], seed=5)
    assert Binseg().detect(values) == binseg_default(values) != []


def test_the_long_run_scale_grows_with_autocorrelation_and_ignores_steps() -> None:
    rng = np.random.default_rng(6)
    steps = _steps([0.0, 10.0, 0.0], [150, 150, 150], seed=6).reshape(-1, 1)
    assert column_scales(steps, "lrv", changes=20)[0] == pytest.approx(1.0, abs=0.2)
    walk = np.cumsum(rng.normal(size=800)).reshape(-1, 1)
    # a random walk's residuals around flat segments are smooth: the scale is several times
    # the running-median one, which sees only the steps' own noise (still below the sd)
    assert column_scales(walk, "lrv", changes=20)[0] > 3 * column_scales(walk, "robust")[0]
    assert column_scales(np.full((50, 1), 3.0), "lrv")[0] == 0.0


def test_the_robust_scale_ignores_a_step_and_the_sd_does_not() -> None:
    step = _steps([0.0, 10.0], [200, 200]).reshape(-1, 1)
    assert column_scales(step, "robust")[0] == pytest.approx(1.0, abs=0.2)
    assert column_scales(step, "sd")[0] > 4.0
    # durations rounded to whole seconds: a MAD of 0 falls back to the sd
    ties = np.array([10.0] * 40 + [11.0] * 3 + [10.0] * 40).reshape(-1, 1)
    assert column_scales(ties, "robust")[0] == pytest.approx(ties.std(ddof=1))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"scale": "mad"}, "scale must be"),
        ({"penalty": "aic"}, "penalty must be"),
        ({"noise_changes": 20}, "noise_changes is for the lrv scale"),
        ({"scale": "lrv", "noise_changes": 0}, "noise_changes is for the lrv scale"),
        ({"penalty": "-2logn"}, "penalty must be"),
        ({"max_changes": -1}, "max_changes must be"),
    ],
)
def test_a_rule_refuses_unknown_settings(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule(**arguments)


def test_an_mbic_rule_adds_the_segment_lengths_to_three_log_n() -> None:
    rule = Rule(penalty="mbic")
    assert rule.per_change(100) == pytest.approx(3 * np.log(100))
    assert detect_changepoints(_steps([0.0, 3.0], [100, 100]), rule) == [100]


@pytest.mark.filterwarnings("error")  # a stage with one run must not warn either
@pytest.mark.parametrize("values", [[5.0] * 50, [7.0], [1.0, 2.0, 3.0], list(range(9))])
def test_constant_or_short_series_have_no_change_points(values: list[float]) -> None:
    assert detect_changepoints(values) == []
    assert binseg_default(values) == []


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


# -- leave-one-series-out selection ----------------------------------------------------------


def _synthetic_series(count: int) -> list[TCPDSeries]:
    """Series with one step each; annotators agree on it."""
    out = []
    for i in range(count):
        at = 40 + 10 * i
        values = _steps([0.0, 2.0 + i], [at, 200 - at], seed=i).reshape(-1, 1)
        out.append(TCPDSeries(f"s{i}", values, {"1": [at], "2": [at + 1]}))
    return out


def test_loso_never_shows_the_selector_the_series_it_is_scored_on() -> None:
    series = _synthetic_series(5)
    seen: list[set[str]] = []

    def recording(train, candidates):
        seen.append({s.name for s in train})
        return selection.best_rule(train, candidates)

    result = selection.leave_one_series_out(series, selection.GRID[:3], selector=recording)
    names = [row["name"] for row in result["series"]]
    assert names == [s.name for s in series] and len(seen) == len(series)
    for held_out, train in zip(names, seen, strict=True):
        assert held_out not in train
        assert train == {s.name for s in series} - {held_out}


def test_a_setting_fitted_on_the_scored_series_is_caught() -> None:
    # A selector that picks per held-out series with the held-out series in view is what the
    # check above must catch: it would see the held-out name in its training set.
    series = _synthetic_series(3)
    leaked: list[bool] = []

    def cheating(train, candidates):
        leaked.append(len(train) == len(series))
        return candidates[0]

    selection.leave_one_series_out(series, selection.GRID[:2], selector=cheating)
    assert leaked == [False, False, False]


def test_selection_picks_the_best_mean_and_breaks_ties_by_grid_order() -> None:
    series = _synthetic_series(3)
    scores = selection.ScoreCache()
    same = Rule(penalty="10logn", max_changes=5), Rule(penalty="10logn", max_changes=20)
    assert selection.best_rule(series, same, scores) == same[0]
    assert selection.best_rule(series, same[::-1], scores) == same[1]
    with pytest.raises(ValueError, match="at least one training series"):
        selection.best_rule([], same)
    with pytest.raises(ValueError, match="at least two series"):
        selection.leave_one_series_out(series[:1])


def test_the_grid_is_small_and_holds_the_shipped_rule_and_binseg() -> None:
    assert len(selection.GRID) == 6 and len(set(selection.GRID)) == 6
    assert SHIPPED_RULE in selection.GRID
    assert Binseg() in selection.GRID  # selection can always fall back to the baseline


# -- the evaluation on TCPD -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tcpd_result() -> dict:
    if not (TCPD / "annotations.json").is_file():
        missing_service(f"the TCPD series are missing at {TCPD}")
    return selection.evaluate_directory(TCPD)


def test_the_shipped_rule_is_the_one_chosen_on_all_tcpd_series(tcpd_result: dict) -> None:
    chosen = tcpd_result["selection"]
    assert chosen["shipped_is_chosen"], chosen["chosen_on_all_series"]
    assert chosen["chosen_on_all_series"] == SHIPPED_RULE.label
    assert chosen["grid"] == [rule.label for rule in selection.GRID]


def test_detector_beats_default_binseg_on_tcpd_in_sample_and_held_out(tcpd_result: dict) -> None:
    r = tcpd_result
    assert r["n_series"] == 16 and len(r["series"]) == 16
    assert r["f1"] > r["baseline_binseg_f1"] and r["cover"] > r["baseline_binseg_cover"]
    # the honest figure: each series scored with the rule chosen on the other 15
    assert r["loso"]["f1"] > r["baseline_binseg_f1"]
    assert r["loso"]["cover"] > r["baseline_binseg_cover"]
    assert r["loso"]["f1"] <= r["f1"] and r["loso"]["cover"] <= r["cover"]
    versus = r["loso_vs_binseg"]
    assert (versus["better"], versus["worse"], versus["equal"]) == (5, 0, 11)
    assert versus["bootstrap90"][0] > 0  # the margin over binseg is not a tie
    # all beat reporting nothing, TCPDBench's "zero" method
    assert r["baseline_zero_f1"] == pytest.approx(0.6956, abs=1e-4)
    assert r["loso"]["f1"] > r["baseline_zero_f1"] and r["loso"]["cover"] > r["baseline_zero_cover"]
    # the shipped rule through the older entry point gives the same in-sample figures
    plain = evaluate_directory(TCPD)
    assert (plain["f1"], plain["cover"]) == (r["f1"], r["cover"])


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
    assert {"loso", "baseline_zero_f1", "baseline_zero_cover", "selection"} <= set(report)
    versus = report["loso_vs_binseg"]
    assert versus["better"] + versus["worse"] + versus["equal"] == 2
    assert versus["bootstrap90"][0] <= versus["mean_difference"] <= versus["bootstrap90"][1]
    assert report["n_series"] == 2
    assert [s["name"] for s in report["series"]] == ["nile", "quality_control_1"]
    assert all(0.0 <= report[k] <= 1.0 for k in ("f1", "cover", "baseline_binseg_f1"))
    assert 0.0 <= report["loso"]["f1"] <= 1.0 and 0.0 <= report["loso"]["cover"] <= 1.0
    row = report["series"][0]
    assert {"loso_rule", "loso_f1", "loso_cover", "baseline_zero_f1", "n_obs"} <= set(row)
    chosen = report["selection"]
    assert chosen["method"] == "leave-one-series-out" and len(chosen["grid"]) == 6
    assert "ties go to the earlier rule" in chosen["rule"]
    assert chosen["shipped"] == SHIPPED_RULE.label


def test_cli_prints_a_table(small_tcpd: Path) -> None:
    result = CliRunner().invoke(main, ["ml", "evaluate-changepoints", str(small_tcpd)])
    assert result.exit_code == 0, result.output
    assert "quality_control_1" in result.output and "2 series: shipped rule" in result.output
    assert "leave-one-series-out F1" in result.output and "binseg F1" in result.output
    assert "over a grid of 6 detectors" in result.output


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
