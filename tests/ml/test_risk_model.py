"""The change-risk model: metrics, recommendations, explanations, data validation, the
`timbel ml evaluate-risk` command, and the targets on the shared public JIT datasets."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import missing_service
from timbel_dagster.cli.app import main
from timbel_dagster.ml.risk.data import FEATURES, parse_columns_map, to_risk_frame
from timbel_dagster.ml.risk.eval import (
    RESULT_KEYS,
    brier,
    pr_auc,
    recall_at_effort,
    risk_density,
    roc_auc,
)
from timbel_dagster.ml.risk.files import evaluate_csv, time_split
from timbel_dagster.ml.risk.model import (
    DecisionCosts,
    RiskThresholds,
    fit_risk_model,
    recommend,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KAMEI = ("bugzilla", "columba", "jdt", "postgres")


def changes(n: int = 600, seed: int = 0, defect_rate_shift: float = 0.0) -> pd.DataFrame:
    """Warehouse-named changes whose risk grows with lines added and falls with experience."""
    rng = np.random.RandomState(seed)
    nf = 1 + rng.poisson(2, n)
    la = np.round(rng.lognormal(3, 1.4, n))
    frame = pd.DataFrame(
        {
            "sha": [f"c{seed}-{i:05d}" for i in range(n)],
            "commitdate": pd.date_range("2024-01-01", periods=n, freq="h").strftime(
                "%Y-%m-%dT%H:%M:%S"
            ),
            "ns": np.minimum(nf, 1 + rng.poisson(0.3, n)),
            "nd": np.minimum(nf, 1 + rng.poisson(0.8, n)),
            "nf": nf,
            "entropy": np.log2(nf) * rng.uniform(0.3, 1, n),
            "la": la,
            "ld": np.round(la * rng.uniform(0, 0.8, n)),
            "lt": np.round(rng.lognormal(6, 1, n)),
            "fix": rng.binomial(1, 0.3, n),
            "ndev": 1 + rng.poisson(3, n),
            "age": rng.exponential(30, n),
            "nuc": np.minimum(nf, 1 + rng.poisson(1, n)),
            "exp": rng.lognormal(5, 1, n),
            "rexp": rng.lognormal(3, 1, n),
            "sexp": rng.lognormal(4, 1, n),
        }
    )
    logit = 0.9 * np.log1p(frame["la"]) - 0.4 * np.log1p(frame["exp"]) - 1.2 + defect_rate_shift
    frame["bug"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    return frame


@pytest.fixture(scope="module")
def fitted():
    dataset = to_risk_frame(changes())
    train, test = time_split(dataset)
    return fit_risk_model(train), train, test


# -- metrics on hand-made inputs ---------------------------------------------------------


def test_ranking_metrics_on_hand_made_scores() -> None:
    y, score = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, score) == pytest.approx(0.75)
    assert pr_auc(y, score) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert brier([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    assert risk_density([0.5, 0.5], [0, 9]).tolist() == [0.5, 0.05]


@pytest.mark.parametrize(
    ("labels", "effort", "score", "expected"),
    [
        # budget 20 of 100: the top change (10) fits, the second (30) would overshoot
        ([1, 0, 1, 0], [10, 10, 30, 50], [0.9, 0.1, 0.8, 0.2], 0.5),
        # smallest first: 10 + 10 = 20 fits exactly on the budget
        ([1, 1, 0, 0], [10, 10, 30, 50], [-10, -10, -30, -50], 1.0),
        # equal scores: the smaller change is reviewed first
        ([0, 1, 0, 0], [15, 5, 30, 50], [0.5, 0.5, 0.1, 0.1], 1.0),
        # review stops at the first change over budget, even before a free one
        ([1, 0, 1, 1], [0, 90, 5, 5], [0.1, 0.9, 0.0, 0.0], 0.0),
        # a free change first costs nothing; then 5 + 5 fit in the 20 left
        ([1, 0, 1, 1], [0, 90, 5, 5], [0.9, 0.1, 0.5, 0.5], 1.0),
    ],
)
def test_recall_at_effort_exact_values(labels, effort, score, expected) -> None:
    assert recall_at_effort(labels, effort, score, budget=0.2) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: roc_auc([1, 1], [0.2, 0.3]), "both 0 and 1"),
        (lambda: brier([0, 1], [0.2, 1.3]), r"\[0, 1\]"),
        (lambda: recall_at_effort([0, 0], [1, 2], [0.1, 0.2]), "all labels are 0"),
        (lambda: recall_at_effort([1, 0], [1, -2], [0.1, 0.2]), "effort must be >= 0"),
        (lambda: roc_auc([0, 1, 1], [0.2, 0.3]), "differ in length"),
    ],
)
def test_metrics_reject_bad_input(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("probability", "thresholds", "expected"),
    [
        (0.0, None, "approve"),
        (0.1999, None, "approve"),
        (0.2, None, "review"),
        (0.5999, None, "review"),
        (0.6, None, "reject"),
        (1.0, None, "reject"),
        (0.3, RiskThresholds(approve_below=0.35, reject_at=0.9), "approve"),
        (0.5, RiskThresholds(approve_below=0.5, reject_at=0.5), "reject"),
    ],
)
def test_recommendation_thresholds(probability, thresholds, expected) -> None:
    assert recommend(probability, thresholds) == expected


@pytest.mark.parametrize(
    "costs",
    [
        DecisionCosts(),
        DecisionCosts(failed_deployment=50, review=2, held_back=5, review_catch_rate=0.8),
        DecisionCosts(failed_deployment=3, review=2, held_back=1, review_catch_rate=0.3),
        DecisionCosts(failed_deployment=100, review=0.5, held_back=200, review_catch_rate=1.0),
    ],
    ids=["defaults", "costly-failures", "review-never-pays", "perfect-review"],
)
def test_the_advice_is_the_cheapest_in_expectation(costs: DecisionCosts) -> None:
    """The cut-offs the costs give pick, at every probability, an advice whose expected cost
    is the lowest of the three (a brute-force check of the closed form)."""
    thresholds = costs.thresholds()
    for step in range(1001):
        p = step / 1000
        cheapest = min(costs.expected_cost(p, a) for a in ("approve", "review", "reject"))
        assert costs.expected_cost(p, recommend(p, thresholds)) == pytest.approx(cheapest), p


def test_the_default_costs_give_the_former_cut_offs_and_costs_move_them() -> None:
    assert DecisionCosts().thresholds() == RiskThresholds(approve_below=0.2, reject_at=0.6)
    # Failures cost more: approve less, reject sooner.
    dearer = DecisionCosts(failed_deployment=40).thresholds()
    assert dearer.approve_below < 0.2 and dearer.reject_at < 0.6
    # A review that costs as much as it saves is never advised: one cut-off.
    never = DecisionCosts(review=8).thresholds()
    assert never.approve_below == never.reject_at == 0.5
    with pytest.raises(ValueError, match="review_catch_rate"):
        DecisionCosts(review_catch_rate=0)
    with pytest.raises(ValueError, match="failed deployment must be above 0"):
        DecisionCosts(failed_deployment=0)


def test_the_settings_choose_costs_or_fixed_cut_offs() -> None:
    from timbel_dagster.ml.risk.scoring import thresholds_from
    from timbel_dagster.settings import SettingsError, load_settings

    assert thresholds_from(load_settings()) == RiskThresholds(0.2, 0.6)
    costly = load_settings(timbel_risk_cost_failed_deployment=40)
    assert thresholds_from(costly) == DecisionCosts(failed_deployment=40).thresholds()
    fixed = load_settings(timbel_risk_approve_below=0.1, timbel_risk_reject_from=0.9)
    assert thresholds_from(fixed) == RiskThresholds(0.1, 0.9)
    with pytest.raises(SettingsError, match="together"):
        load_settings(timbel_risk_approve_below=0.1)
    with pytest.raises(SettingsError, match="above TIMBEL_RISK_APPROVE_BELOW"):
        load_settings(timbel_risk_approve_below=0.5, timbel_risk_reject_from=0.4)


def test_bad_thresholds_and_probabilities_are_refused() -> None:
    with pytest.raises(ValueError, match="approve_below"):
        RiskThresholds(approve_below=0.7, reject_at=0.6)
    with pytest.raises(ValueError, match="outside"):
        recommend(1.2)


# -- the fitted model --------------------------------------------------------------------


def test_predictions_are_probabilities_and_beat_chance(fitted) -> None:
    model, _, test = fitted
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), 2)
    assert np.allclose(proba.sum(axis=1), 1)
    assert roc_auc(test["label"], model.risk(test)) > 0.7


def test_contributions_add_up_and_rank_the_driving_metric_first(fitted) -> None:
    model, _, test = fitted
    rows = test.iloc[:3].copy()
    rows.iloc[0, rows.columns.get_loc("la")] = 20_000  # far above the median change
    contributions = model.contributions(rows)
    assert list(contributions.columns) == list(FEATURES)
    totals = contributions.sum(axis=1).to_numpy() + model.baseline_log_odds
    assert np.allclose(totals, model.log_odds(rows))
    reasons = model.reasons(rows, top=3)
    assert [len(r) for r in reasons] == [3, 3, 3]
    first = reasons[0]
    assert first[0]["feature"] == "la" and first[0]["direction"] == "raises"
    assert first[0]["value"] == 20_000
    # Each reason also says itself in words, for the reviewer.
    assert first[0]["text"].startswith("adds 20,000 lines: raises risk strongly (failure odds x")
    sizes = [abs(r["contribution"]) for r in first]
    assert sizes == sorted(sizes, reverse=True)


def test_contributions_do_not_depend_on_how_rows_are_batched(
    fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timbel_dagster.ml.risk import explain

    model, _, test = fitted
    rows = test.iloc[:6]  # rows with different metrics at the median: 2**k mixes, k varying
    monkeypatch.setattr(explain, "SHAPLEY_BATCH_MIXES", 1)  # a row is never split: one a call
    one_by_one = model.contributions(rows).to_numpy()
    for per_call in (2 ** (len(FEATURES) - 2), 10**9):  # rows packed several a call; all in one
        monkeypatch.setattr(explain, "SHAPLEY_BATCH_MIXES", per_call)
        assert np.array_equal(model.contributions(rows).to_numpy(), one_by_one)


def test_similar_returns_k_training_changes_with_outcomes(fitted) -> None:
    model, train, test = fitted
    near = model.similar(test.iloc[0], k=5)
    assert len(near) == 5
    assert set(near.index) <= set(train.index)
    assert set(near["outcome"]) <= {0, 1}
    assert near["distance"].is_monotonic_increasing
    itself = model.similar(train.iloc[[7]], k=1)
    assert itself.index[0] == train.index[7] and itself["distance"].iloc[0] == 0
    assert itself["outcome"].iloc[0] == train["label"].iloc[7]
    with pytest.raises(ValueError, match="one change"):
        model.similar(test.iloc[:2])


def test_confidence_is_lower_far_from_the_training_data(fitted) -> None:
    model, _, test = fitted
    confidence = model.confidence(test)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    strange = test.iloc[[0]].copy()
    strange[["nf", "la", "ld", "lt", "exp"]] = [5000, 1e7, 1e7, 1e8, 1]
    assert model.confidence(strange)[0] < confidence.min()


def test_assess_pickle_and_missing_columns(fitted) -> None:
    model, _, test = fitted
    [view] = model.assess(test.iloc[[3]])
    assert set(view) == {"id", "probability", "recommendation", "confidence", "reasons", "similar"}
    assert view["recommendation"] == recommend(view["probability"])
    assert len(view["similar"]) == 5
    again = pickle.loads(pickle.dumps(model))
    assert np.allclose(again.risk(test), model.risk(test))
    with pytest.raises(ValueError, match=r"lacks metric column.*la, ld"):
        model.risk(test.drop(columns=["la", "ld"]))


# -- loading and validation --------------------------------------------------------------


def test_kamei_release_is_mapped_and_denormalised() -> None:
    release = pd.DataFrame(
        {
            "transactionid": [1, 2],
            "commitdate": ["2003/10/10 16:10", "2003/10/11 09:00"],
            "ns": [1, 1],
            "nm": [2, 1],
            "nf": [2, 1],
            "entropy": [1.0, 0.0],
            "la": [0.1, 0.5],
            "ld": [0.05, 0.0],
            "lt": [100.0, 10.0],
            "fix": [1, 0],
            "ndev": [3, 1],
            "pd": [10, 4],
            "npt": [0.5, 1.0],
            "exp": [5, 6],
            "rexp": [2.5, 3.0],
            "sexp": [4, 5],
            "bug": [1, 0],
        }
    )
    dataset = to_risk_frame(release)
    row = dataset.frame.loc["1"]
    assert dataset.profile == "kamei2013" and dataset.label_column == "bug"
    assert (row["nd"], row["la"], row["ld"], row["lt"]) == (2, 20, 10, 200)
    assert (row["nuc"], row["age"], row["entropy"]) == (1, 5, 1.0)
    assert dataset.frame.loc["2", "la"] == 5
    assert str(row["time"]) == "2003-10-10 16:10:00+00:00"


def _write(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("mutate", "options", "message"),
    [
        (lambda f: f.drop(columns=["la", "nuc"]), {}, r"missing metric column\(s\) la, nuc"),
        (lambda f: f.head(60), {}, "has 60 rows; at least 100 are needed"),
        (lambda f: f.assign(bug=0), {}, r"only clean changes"),
        (lambda f: f.assign(bug=[0] * 400 + [1] * 200), {}, "newest 20%.*only defective"),
        (lambda f: f.assign(commitdate=["soon"] * len(f)), {}, "'commitdate' line 2 has 'soon'"),
        (lambda f: f.assign(la=["x"] + [1] * (len(f) - 1)), {}, "'la' .* line 2"),
        (lambda f: f.assign(bug=["maybe"] * len(f)), {}, "line 2 has 'maybe'"),
        (lambda f: f.drop(columns=["commitdate"]), {}, "no time column found"),
        (lambda f: f.drop(columns=["bug"]), {}, "no label column found"),
        (lambda f: f, {"columns_map": "la=lines_added"}, r"la \(as 'lines_added'\)"),
        (lambda f: f, {"columns_map": "size=la"}, "not metrics"),
        (lambda f: f, {"time": "when"}, "time column 'when' not found"),
    ],
)
def test_bad_data_is_refused_naming_the_problem(tmp_path, mutate, options, message) -> None:
    path = _write(tmp_path, mutate(changes()))
    with pytest.raises(ValueError, match=message):
        evaluate_csv(data=path, **options)


def test_train_and_test_files_must_be_in_time_order_and_exclusive(tmp_path) -> None:
    frame = changes()
    old, new = (
        _write(tmp_path, frame.iloc[:480], "old.csv"),
        _write(tmp_path, frame[480:], "new.csv"),
    )
    with pytest.raises(ValueError, match="must follow the training period"):
        evaluate_csv(train=new, test=old)
    with pytest.raises(ValueError, match="mutually exclusive"):
        evaluate_csv(train=old, test=new, data=old)
    with pytest.raises(ValueError, match="both --train FILE and --test FILE"):
        evaluate_csv(train=old)
    assert parse_columns_map("nd=nm, age=pd") == {"nd": "nm", "age": "pd"}
    with pytest.raises(ValueError, match="not new=old"):
        parse_columns_map("nd")


# -- the CLI -----------------------------------------------------------------------------


def test_cli_evaluates_one_file_split_in_time_order(tmp_path) -> None:
    path = _write(tmp_path, changes(500, seed=1).rename(columns={"bug": "failed"}))
    result = CliRunner().invoke(main, ["ml", "evaluate-risk", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert list(report)[: len(RESULT_KEYS)] == list(RESULT_KEYS)
    assert (report["n_train"], report["n_test"]) == (400, 100)
    assert report["auc"] > 0.6
    text = CliRunner().invoke(main, ["ml", "evaluate-risk", "--data", str(path)])
    assert text.exit_code == 0 and "recall at 20% effort" in text.output


def test_cli_evaluates_train_and_test_files(tmp_path) -> None:
    frame = changes(500, seed=2).rename(columns={"la": "added", "bug": "defect"})
    train, test = (
        _write(tmp_path, frame.iloc[:400], "a.csv"),
        _write(tmp_path, frame[400:], "b.csv"),
    )
    args = ["ml", "evaluate-risk", "--train", str(train), "--test", str(test), "--json"]
    result = CliRunner().invoke(main, [*args, "--label", "defect", "--columns-map", "la=added"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["n_train"], report["n_test"], report["time_order_checked"]) == (400, 100, True)
    refused = CliRunner().invoke(main, [*args, "--data", str(train)])
    assert refused.exit_code == 2 and "mutually exclusive" in refused.output


# -- targets on the shared public data ---------------------------------------------------


def _shared(path: str) -> Path:
    full = DATA / path
    if not full.is_file():
        missing_service(f"the shared JIT dataset is missing at {full}")
    return full


@pytest.mark.parametrize("project", KAMEI)
def test_kamei_targets(project) -> None:
    """Time-ordered 80/20: AUC above a default random forest and above lines added, and more
    defects found in 20 % of the review effort than reviewing the smallest changes first."""
    result = evaluate_csv(data=_shared(f"jit-kamei2013/{project}.csv"))
    assert result["auc"] > result["baseline_rf_auc"], result
    assert result["auc"] > result["baseline_la_auc"], result
    assert (
        result["recall_at_20pct_effort"] > result["baseline_smallest_first_recall_at_20pct_effort"]
    ), result


def test_apachejit_target() -> None:
    result = evaluate_csv(data=_shared("jit-apachejit/apachejit_test_small.csv"))
    assert result["group"] == "project"
    assert result["auc"] >= 0.86, result
    assert result["auc"] > result["baseline_rf_auc"] > 0.5


def test_the_advice_cost_counts_what_each_advice_cost_given_the_outcome() -> None:
    import numpy as np

    from timbel_dagster.ml.risk.eval import advice_costs

    # reject a failure (0), approve a good change (0), review a good one (1), review a
    # failure (1 + half of 10 missed) -> 7 / 4; approving all: 20 / 4; reviewing all: 14 / 4.
    result = advice_costs(np.array([1, 0, 0, 1]), np.array([0.9, 0.1, 0.3, 0.5]), DecisionCosts())
    assert result["advice_cost_per_change"] == pytest.approx(1.75)
    assert result["baseline_approve_all_cost_per_change"] == pytest.approx(5.0)
    assert result["baseline_review_all_cost_per_change"] == pytest.approx(3.5)
    assert result["advice_shares"] == {"approve": 0.25, "review": 0.5, "reject": 0.25}


def test_the_calibration_error_is_zero_when_each_bin_comes_true() -> None:
    import numpy as np

    from timbel_dagster.ml.risk.eval import expected_calibration_error

    # One bin: predicted 0.55, observed 1 of 2 -> 0.05 off.
    honest = expected_calibration_error(np.array([0, 1]), np.array([0.55, 0.55]))
    assert honest == pytest.approx(0.05)
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.array([0.5] * 4)) == 0.0
    # Two bins: 0.15 predicted, 0 of 2 came true; 0.95 predicted, 2 of 2.
    off = expected_calibration_error(np.array([0, 0, 1, 1]), np.array([0.15, 0.15, 0.95, 0.95]))
    assert off == pytest.approx((2 * 0.15 + 2 * 0.05) / 4)
