"""The risk model's settings are chosen on training rows only (issue 16 item 1), its
members behave as documented, and the loader reads Commit Guru files such as the ISSTA 2021
data (issue 16 item 2)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from benchmarks import ml_risk_projects
from tests.ml.test_risk_model import changes
from timbel_dagster.cli.app import main
from timbel_dagster.ml.risk import model as risk_model
from timbel_dagster.ml.risk import selection
from timbel_dagster.ml.risk.data import to_risk_frame
from timbel_dagster.ml.risk.eval import evaluate
from timbel_dagster.ml.risk.features import engineer, raw_metrics
from timbel_dagster.ml.risk.files import time_split
from timbel_dagster.ml.risk.model import MIN_SLOPE, _platt, fit_risk_model
from timbel_dagster.ml.risk.rankers import MEMBERS

# Four commits written by hand in the layout of Zeng et al.'s ISSTA 2021 files
# (ZZR0/ISSTA21-JIT-DP, Data_Extraction/git_base/datasets/qt/cross/k_test.csv): a leading
# unnamed index column, `_id` the commit hash, `date` in epoch seconds, the label twice
# (`bug` and `__`), entropy spelt `entrophy`, raw line counts (`lt` summed over the files)
# and `age` in fractional days. The values are made up; only the format is theirs.
ISSTA21_ROWS = """\
,_id,date,bug,__,ns,nd,nf,entrophy,la,ld,lt,fix,ndev,age,nuc,exp,rexp,sexp
7,a1b2c3d4e5f60718293a4b5c6d7e8f9012345678,1491996738,0,0,1,1,4,1.75,30,2,9120,0,41,12.25,210,1500,95.5,600
8,b2c3d4e5f60718293a4b5c6d7e8f901234567891,1491997988,1,1,2,3,1,0.0,412,97,633,1,9,70.0,18,12,3.25,2
9,c3d4e5f60718293a4b5c6d7e8f90123456789012,1492002883,0,0,1,1,1,0.0,0,5,57,0,3,0.5,4,880,40.0,301
10,d4e5f60718293a4b5c6d7e8f9012345678901234,1492003859,1,1,1,2,2,0.5,8,8,1400,0,20,400.125,44,2,2.0,2
"""


def test_the_issta21_commit_guru_layout_loads_in_raw_units() -> None:
    dataset = to_risk_frame(pd.read_csv(io.StringIO(ISSTA21_ROWS)))
    assert dataset.profile == "commitguru"
    assert (dataset.label_column, dataset.time_column) == ("bug", "date")
    assert dataset.renames == {"entropy": "entrophy"}
    frame = dataset.frame
    assert frame.index.name == "_id" and frame.index[1].startswith("b2c3")
    second = frame.iloc[1]
    # Nothing is rescaled: these files hold raw counts, unlike Kamei's release.
    assert (second["la"], second["ld"], second["lt"], second["nuc"]) == (412, 97, 633, 18)
    assert (second["entropy"], second["age"], second["fix"]) == (0.0, 70.0, 1.0)
    assert str(frame["time"].iloc[0]) == "2017-04-12 11:32:18+00:00"  # date -u -d @1491996738
    assert frame["label"].tolist() == [0, 1, 0, 1]


def test_commit_guru_exports_with_their_own_column_names_load_too() -> None:
    export = pd.read_csv(io.StringIO(ISSTA21_ROWS)).rename(
        columns={"_id": "commit_hash", "date": "author_date_unix_timestamp", "bug": "contains_bug"}
    )
    export["contains_bug"] = export["contains_bug"].map({0: "False", 1: "True"})
    dataset = to_risk_frame(export.drop(columns=["__"]))
    assert (dataset.profile, dataset.label_column) == ("commitguru", "contains_bug")
    assert dataset.time_column == "author_date_unix_timestamp"
    assert dataset.frame["label"].tolist() == [0, 1, 0, 1]


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Record which rows reach the chooser, and per inner fold which rows the members are
    fitted on and which they are then scored on."""
    seen: dict[str, list] = {"chooser": [], "fitted": [], "scored": []}
    choose, fit = selection.choose_blend, selection.fit_rankers

    def chooser(engineered, *args, **kwargs):
        seen["chooser"].append(set(engineered.index))
        return choose(engineered, *args, **kwargs)

    def fitted(engineered, *args, **kwargs):
        seen["fitted"].append(list(engineered.index))
        rankers = fit(engineered, *args, **kwargs)
        members = rankers.members

        def scored(frame, *a, **k):
            seen["scored"].append(list(frame.index))
            return members(frame, *a, **k)

        rankers.members = scored
        return rankers

    monkeypatch.setattr(risk_model, "choose_blend", chooser)
    monkeypatch.setattr(selection, "fit_rankers", fitted)
    return seen


def test_no_setting_is_chosen_on_the_rows_it_is_scored_on(monkeypatch) -> None:
    """The blend weights and the Platt scaling come from inner folds of the training rows:
    no test row reaches the chooser, and inside it each fold's members are scored only on
    rows newer than every row they were fitted on."""
    train, test = time_split(to_risk_frame(changes(700, seed=3)))
    seen = _spy(monkeypatch)
    result = evaluate(train, test, group=None)
    assert seen["chooser"] == [set(train.index)]
    assert not seen["chooser"][0] & set(test.index)
    position = {sha: i for i, sha in enumerate(train.index)}
    assert len(seen["fitted"]) == len(seen["scored"]) == 2
    for fitted, scored in zip(seen["fitted"], seen["scored"], strict=True):
        assert max(position[s] for s in fitted) < min(position[s] for s in scored)
    assert "time-ordered inner validation on the training rows only" in result["settings"]
    assert len(result["settings_weights"]) == len(MEMBERS)


def test_the_spy_would_catch_a_chooser_that_saw_the_test_rows(monkeypatch) -> None:
    """The check above can fail: fitting on all rows (test included) is caught."""
    frame = to_risk_frame(changes(700, seed=3)).frame.sort_values("time")
    train, test = frame.iloc[:560], frame.iloc[560:]
    seen = _spy(monkeypatch)
    fit_risk_model(frame, group=None)  # the mistake: the chooser gets the test rows too
    assert seen["chooser"][0] & set(test.index)
    assert seen["chooser"][0] != set(train.index)


def test_the_default_blend_stays_unless_another_clearly_wins() -> None:
    rng = np.random.RandomState(0)
    y = rng.binomial(1, 0.3, 400)
    noise = rng.normal(size=(400, 3))
    members = noise + np.column_stack([np.zeros(400), np.zeros(400), 3.0 * y])
    engineered = pd.DataFrame({"la": np.arange(400.0)})

    class Fixed:
        def members(self, frame, groups=None):
            return members[frame.index.to_numpy()]

    chosen = _choose_with(engineered, y, Fixed())
    # Only the size member carries signal: the size-only-heavy blend wins by far.
    assert chosen.weights == (1.0, 1.0, 4.0)
    assert chosen.scores[chosen.weights] >= chosen.scores[(1.0, 1.0, 1.0)] + selection.MIN_GAIN
    same = np.repeat(members[:, [2]], 3, axis=1)  # every blend ranks alike
    flat = _choose_with(
        engineered, y, type("Same", (), {"members": lambda s, f, g=None: same[f.index]})()
    )
    assert flat.weights == (1.0, 1.0, 1.0)  # no candidate clears the margin: the default
    assert "chose 1/1/1" in flat.describe()["text"]


def _choose_with(engineered, y, fitted):
    patch = pytest.MonkeyPatch()
    patch.setattr(selection, "fit_rankers", lambda *a, **k: fitted)
    try:
        return selection.choose_blend(engineered, y, 0)
    finally:
        patch.undo()


def test_a_reversed_calibration_slice_does_not_reverse_the_ranking() -> None:
    score = np.linspace(-2, 2, 40)
    y = (score < 0).astype(int)  # the newest rows order the changes against the model
    slope, intercept = _platt(score, y)
    assert slope == MIN_SLOPE
    p = 1 / (1 + np.exp(-(slope * score + intercept)))
    assert np.all(np.diff(p) > 0)
    assert p.mean() == pytest.approx(y.mean(), abs=0.01)


def test_boosting_risk_never_falls_as_lines_added_rise_and_experience_falls() -> None:
    """The monotone constraints hold on the model's own features (log lines added, log
    experience), the others held at the median change; ratios built from lines added
    (relative churn, ...) stay free, so this is a property of the features, not of raw la."""
    train, _ = time_split(to_risk_frame(changes(700, seed=4)))
    model = fit_risk_model(train, group=None)
    median = engineer(raw_metrics(pd.DataFrame([model.medians]), model.features, model.medians))
    for feature, sign in (("la", 1), ("exp", -1)):
        rows = pd.concat([median] * 30, ignore_index=True)
        rows[feature] = np.log1p(np.geomspace(1, 5000, 30))
        members = model.rankers.members(rows)
        assert np.all(sign * np.diff(members[:, MEMBERS.index("boosting")]) >= -1e-9), feature
    rows = pd.concat([median] * 30, ignore_index=True)
    rows["la"] = np.log1p(np.geomspace(1, 5000, 30))
    assert np.all(np.diff(model.rankers.members(rows)[:, MEMBERS.index("size")]) > 0)


def test_evaluate_risk_says_how_the_settings_were_chosen(tmp_path) -> None:
    path = tmp_path / "changes.csv"
    changes(500, seed=5).to_csv(path, index=False)
    text = CliRunner().invoke(main, ["ml", "evaluate-risk", "--data", str(path)])
    assert text.exit_code == 0, text.output
    assert (
        "Settings: blend weights (logistic, boosting, size) chosen by time-ordered" in text.output
    )
    report = json.loads(
        CliRunner().invoke(main, ["ml", "evaluate-risk", "--data", str(path), "--json"]).output
    )
    assert report["settings"].startswith("blend weights")


def test_the_projects_benchmark_skips_a_project_the_model_cannot_train_on(tmp_path, capsys) -> None:
    """A project whose split is fine but whose newest training rows hold no defect (the
    model's own calibration check) is skipped with its reason, not a crash of the run."""
    frame = changes(300, seed=6)
    frame.loc[192:239, "bug"] = 0  # the newest 20 % of the oldest 240 rows: no defect
    assert frame["bug"].iloc[240:].value_counts().min() >= ml_risk_projects.MIN_TEST_CLASS
    (tmp_path / "jit-kamei2013").mkdir()
    frame.to_csv(tmp_path / "jit-kamei2013" / "bugzilla.csv", index=False)
    ml_risk_projects.main(tmp_path)
    printed = capsys.readouterr().out
    assert "# skipped bugzilla: newest 20 % of the training frame has only label 0" in printed
