"""The risk model's Shapley contributions equal a plain exact computation (every coalition
of every player scored, one row at a time) on models fitted on the shared public JIT data:
the null-player shortcut and the batching in `explain.shapley_contributions` change the cost,
not the values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import missing_service
from timbel_dagster.ml.risk import explain
from timbel_dagster.ml.risk.data import load_risk_csv
from timbel_dagster.ml.risk.features import raw_metrics
from timbel_dagster.ml.risk.files import time_split
from timbel_dagster.ml.risk.model import RiskModel, fit_risk_model

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
DATASETS = {
    "bugzilla": "jit-kamei2013/bugzilla.csv",  # 14 metrics, no repository; many at the median
    "apachejit": "jit-apachejit/apachejit_test_small.csv",  # 13 metrics and the project
}
TRAIN_ROWS = 600  # the newest of the training part: a real model, fitted in a second or two


def reference_shapley(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Textbook baseline Shapley values, as `explain` computed them before the shortcut: per
    row, all 2**players mixes of the row and the median change of an unknown repository,
    scored in one call; player i's value is the sum over the coalitions S without i of
    |S|! (m-|S|-1)! / m! (v(S + i) - v(S))."""
    features = list(model.features)
    players = features + (["group"] if model.group else [])
    m = len(players)
    values = raw_metrics(frame, features, model.medians).to_numpy()
    baseline = np.array([model.medians[f] for f in features])
    coalitions = np.arange(2**m)
    members = ((coalitions[:, None] >> np.arange(m)) & 1).astype(bool)
    sizes = members.sum(axis=1)
    weight = np.array(
        [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)]
    )
    result = np.zeros((len(frame), m))
    for r in range(len(frame)):
        mixes = pd.DataFrame(
            np.where(members[:, : len(features)], values[r], baseline), columns=features
        )
        if model.group:
            mixes[model.group] = np.where(members[:, -1], frame[model.group].iloc[r], None)
        v = model.log_odds(mixes)
        for i in range(m):
            without = coalitions[~members[:, i]]
            result[r, i] = np.sum(weight[sizes[without]] * (v[without | (1 << i)] - v[without]))
    return pd.DataFrame(result, index=frame.index, columns=players)


@pytest.fixture(scope="module", params=sorted(DATASETS))
def fitted(request) -> tuple[RiskModel, pd.DataFrame]:
    path = DATA / DATASETS[request.param]
    if not path.is_file():
        missing_service(f"the shared JIT dataset is missing at {path}")
    train, test = time_split(load_risk_csv(path, group="auto"))
    return fit_risk_model(train.iloc[-TRAIN_ROWS:]), test


def _rows(model: RiskModel, test: pd.DataFrame) -> pd.DataFrame:
    """Test changes with the most and the fewest metrics at the median, one with unknown
    (NaN, scored as the median) metrics, one entirely at the median and, with a repository
    column, ones from a repository unknown to the model and from none."""
    at_median = (
        raw_metrics(test, model.features, model.medians).to_numpy()
        == np.array([model.medians[f] for f in model.features])
    ).sum(axis=1)
    order = np.argsort(at_median, kind="stable")
    rows = test.iloc[[order[0], order[1], order[-1], 5]].copy()
    assert at_median[order[0]] < at_median[order[-1]]  # both ends of the shortcut
    unknown, typical = rows.iloc[[3]].copy(), rows.iloc[[0]].copy()
    unknown[list(model.features[:4])] = np.nan
    typical[list(model.features)] = [model.medians[f] for f in model.features]
    extra = [
        unknown.rename(index=lambda i: f"{i}-unknown"),
        typical.rename(index="{}-median".format),
    ]
    if model.group:
        elsewhere, nowhere = rows.iloc[[1]].copy(), rows.iloc[[2]].copy()
        elsewhere[model.group] = "nobody/never-seen"
        nowhere[model.group] = None
        extra += [elsewhere.rename(index="{}-new".format), nowhere.rename(index="{}-none".format)]
    return pd.concat([rows, *extra])


def test_contributions_equal_the_plain_exact_computation(fitted) -> None:
    model, test = fitted
    rows = _rows(model, test)
    expected = reference_shapley(model, rows)
    got = model.contributions(rows)
    assert list(got.columns) == list(expected.columns)
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    # A metric at the median contributes exactly nothing; the values add up to the log-odds.
    values = raw_metrics(rows, model.features, model.medians)
    at_median = values == pd.Series(model.medians)[list(model.features)]
    assert (got[list(model.features)].to_numpy()[at_median.to_numpy()] == 0).all()
    totals = got.sum(axis=1).to_numpy() + model.baseline_log_odds
    np.testing.assert_allclose(totals, model.log_odds(rows), rtol=0, atol=1e-9)


def test_more_players_than_the_limit_are_refused_not_approximated(
    fitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, test = fitted
    players = len(model.features) + bool(model.group)
    monkeypatch.setattr(explain, "MAX_SHAPLEY_FEATURES", players - 1)
    with pytest.raises(ValueError, match=f"at most {players - 1} players .*not {players}"):
        model.contributions(test.iloc[:1])
