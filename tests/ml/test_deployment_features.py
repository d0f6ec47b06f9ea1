"""Per-deployment change features from hand-built frames: the touched files' history takes
the worst commit, stays unknown (NaN) where no shipped commit carries it, and is 0 for a
deployment that shipped nothing; the training table keeps the unknowns through the warehouse,
and the advisor takes a file-history feature only where the training rows tell it something."""

from __future__ import annotations

import math
import uuid

import pandas as pd
import pytest

from timbel_dagster.ml.models.store import load_training_rows, replace_training_rows
from timbel_dagster.ml.risk.advisor import RISK_FEATURES, risk_features
from timbel_dagster.ml.risk.deployment_data import CHANGE_COLUMNS, DeliveryFrames
from timbel_dagster.ml.risk.deployment_features import FEATURES, deployment_features
from timbel_dagster.warehouse.engine import get_engine

START = pd.Timestamp("2026-10-05 09:00", tz="UTC")
IDS = {name: uuid.uuid5(uuid.NAMESPACE_URL, name) for name in ("d1", "d2", "d3", "d4")}


def _commit(deployment: str, author: str, la: float, history: tuple[float | None, ...]) -> dict:
    row: dict = dict.fromkeys(CHANGE_COLUMNS, 1.0)
    row |= {"deployment_id": IDS[deployment], "committed_at": START, "author": author}
    row |= {"la": la, "fix": False, "prior_fixes": history[0], "recent_churn": history[1]}
    return row


def _frames() -> DeliveryFrames:
    deployments = pd.DataFrame(
        [
            {
                "id": IDS[name], "service": "shop-api", "environment": "prod",
                "kind": "release", "status": "success",
                "started_at": START + pd.Timedelta(hours=i),
                "completed_at": START + pd.Timedelta(hours=i, minutes=5),
                "execution_id": None, "image": None, "commit_to": None,
            }
            for i, name in enumerate(IDS)
        ]
    )  # fmt: skip
    shipped = pd.DataFrame(
        [
            _commit("d1", "alice", 10, (3, 100)),
            _commit("d1", "bob", 5, (7, 40)),
            _commit("d2", "alice", 4, (None, None)),  # stored before migration 0029
            # d3 shipped nothing (a redeployment)
            _commit("d4", "carol", 2, (5, 10)),
            _commit("d4", "carol", 2, (None, None)),
        ]
    )
    executions = pd.DataFrame(
        columns=["id", "pipeline_id", "started_at", "duration", "status", "commit_sha",
                 "failed_stages", "max_attempt"]
    )  # fmt: skip
    incidents = pd.DataFrame(
        columns=["service", "environment", "opened_at", "caused_by_deployment_id"]
    )
    return DeliveryFrames(deployments, shipped, executions, incidents)


def _by_name(table: pd.DataFrame, column: str) -> dict[str, float]:
    return {name: table.loc[IDS[name], column] for name in IDS}


def test_the_file_history_takes_the_worst_commit_and_keeps_unknowns() -> None:
    table = deployment_features(_frames())
    assert {"prior_fixes", "recent_churn"} <= set(FEATURES)
    # Max, not sum: d1's commits 3 and 7 fixes, 100 and 40 lines; d4 skips its unknown commit.
    assert _by_name(table, "prior_fixes") == pytest.approx(
        {"d1": 7.0, "d2": math.nan, "d3": 0.0, "d4": 5.0}, nan_ok=True
    )
    assert _by_name(table, "recent_churn") == pytest.approx(
        {"d1": 100.0, "d2": math.nan, "d3": 0.0, "d4": 10.0}, nan_ok=True
    )
    # Kamei's features are as before: sums over commits, 0 when nothing shipped.
    assert _by_name(table, "la") == {"d1": 15.0, "d2": 4.0, "d3": 0.0, "d4": 4.0}
    # But the touched files' size is the largest commit's, as analyze-changes has it: d1's
    # and d4's two commits each say 1 line (CHANGE_COLUMNS at 1.0), not 2.
    assert _by_name(table, "lt") == {"d1": 1.0, "d2": 1.0, "d3": 0.0, "d4": 1.0}
    assert _by_name(table, "n_commits") == {"d1": 2.0, "d2": 1.0, "d3": 0.0, "d4": 2.0}
    assert not table.drop(columns=["prior_fixes", "recent_churn"]).isna().any().any()


def test_the_training_table_keeps_unknowns_through_the_warehouse(warehouse_url: str) -> None:
    table = deployment_features(_frames())
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        assert replace_training_rows(connection, table) == 4
    with engine.connect() as connection:
        loaded = load_training_rows(connection)
    assert _by_name(loaded, "prior_fixes") == pytest.approx(
        _by_name(table, "prior_fixes"), nan_ok=True
    )
    assert loaded["recent_churn"].dtype == float and loaded["recent_churn"].isna().sum() == 1


@pytest.mark.parametrize(
    ("prior_fixes", "recent_churn", "added"),
    [
        ([math.nan] * 4, [math.nan] * 4, ()),  # the sample organisation: no files
        ([0.0, math.nan, 0.0, math.nan], [math.nan] * 4, ()),  # 0 only where nothing shipped
        ([0.0, 2.0, math.nan, 1.0], [5.0] * 4, ("prior_fixes",)),
        ([0.0, 2.0, 1.0, 1.0], [0.0, 30.0, math.nan, 8.0], ("prior_fixes", "recent_churn")),
    ],
)
def test_a_file_history_feature_joins_the_model_when_it_varies(
    prior_fixes: list[float], recent_churn: list[float], added: tuple[str, ...]
) -> None:
    train = pd.DataFrame({"prior_fixes": prior_fixes, "recent_churn": recent_churn})
    assert risk_features(train) == (*RISK_FEATURES, *added)
    assert len(risk_features(train)) <= 15  # exact Shapley reasons: 2**features per row
