"""The deployment-risk advisor: train the risk model on past deployments, assess a pending
request, and tell when the model has drifted.

The model is `risk_model.fit_risk_model` (the one `timbel ml evaluate-risk` measures on the
public JIT datasets) on the per-deployment features of `deployment_features`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.models.store import load_training_rows
from timbel_dagster.ml.risk.deployment_data import candidate_frames, load_delivery_frames
from timbel_dagster.ml.risk.deployment_features import deployment_features
from timbel_dagster.ml.risk.eval import evaluate, roc_auc
from timbel_dagster.ml.risk.model import fit_risk_model
from timbel_dagster.ml.risk.words import confidence_text
from timbel_dagster.records.delivery import HISTORY_MEASURES
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

    from timbel_dagster.ml.models.store import StoredModel
    from timbel_dagster.ml.risk.deployment_data import DeliveryFrames

MODEL_NAME = "risk_model"
# Bumped whenever the features or the model change (ml/risk/*.py).
RISK_CODE_VERSION = "risk-3"
# risk-2: monotone boosting, the lines-added member and blend weights chosen on inner folds.
# risk-3: the touched files' past fixes and recent churn (FILE_HISTORY_FEATURES).
# The features the deployment model always uses; 15 with FILE_HISTORY_FEATURES, under the
# 16 that exact Shapley values allow (`explain.MAX_SHAPLEY_FEATURES`): a reviewer's "top
# reasons" cost 2**k model evaluations per assessed deployment, k its features off the median.
RISK_FEATURES = (
    "n_commits",
    "la",
    "ld",
    "nf",
    "entropy",
    "exp",
    "build_failed_stages",
    "build_duration_drift",
    "flaky_rate",
    "recent_failure_rate",
    "hours_since_incident",
    "friday_or_weekend",
    "environment",
)
# The touched files' history (ml/changes/metrics.py). Only commits `cicd/commits` walks from
# git carry it: the sample organisation's commits have no files, and rows stored before
# migration 0029 have none until their repository is walked again. So each joins the model
# only when it takes more than one value among the training deployments: one that is unknown
# (or the same) in all of them teaches nothing, and would still double the reasons' cost.
FILE_HISTORY_FEATURES = HISTORY_MEASURES
TRAIN_FRACTION = 0.8


def time_split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest 80 % to train, newest 20 % to test (the table is oldest first)."""
    cut = int(len(table) * TRAIN_FRACTION)
    return table.iloc[:cut], table.iloc[cut:]


def risk_features(train: pd.DataFrame) -> tuple[str, ...]:
    """`RISK_FEATURES`, then each of `FILE_HISTORY_FEATURES` that takes more than one known
    value in `train`."""
    varying = tuple(
        name
        for name in FILE_HISTORY_FEATURES
        if name in train.columns and train[name].nunique(dropna=True) > 1
    )
    return (*RISK_FEATURES, *varying)


def train(table: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
    """Evaluate the model in time order against its baselines, then fit the model that is
    stored on every row, with the features the evaluated one used (chosen on its training
    rows, `risk_features`). Raises ValueError when the history cannot train a model (too few
    deployments, or no failure in the training or test part)."""

    if table.empty:
        raise ValueError("no deployments in the warehouse yet: nothing to learn from")
    older, newer = time_split(table)
    features = risk_features(older)
    evaluation = evaluate(older, newer, features=features, label="label", group=None)
    evaluation["trained_from"] = str(table["started_at"].iloc[0])
    evaluation["tested_from"] = str(newer["started_at"].iloc[0])
    model = fit_risk_model(table, features=features, label="label", group=None)
    return model, evaluation


def _similar_details(
    similar: list[dict[str, Any]], history: pd.DataFrame | None
) -> list[dict[str, Any]]:
    """Name the similar past deployments: service, environment and when."""
    if history is None:
        return similar
    out = []
    for item in similar:
        key = next((i for i in history.index if str(i) == item["id"]), None)
        row = history.loc[key] if key is not None else None
        out.append(
            item
            | (
                {}
                if row is None
                else {
                    "service": row["service"],
                    "environment": row["environment_name"],
                    "started_at": str(row["started_at"]),
                    "outcome": "failed" if item["outcome"] else "succeeded",
                }
            )
        )
    return out


def assess_rows(
    stored: StoredModel,
    rows: pd.DataFrame,
    thresholds: Any,
    history: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """The advisor's assessment of each row of a feature table; beside the numbers,
    `confidence_text` (and each reason's `text`) say in words how to take them."""
    assessments = stored.estimator.assess(rows, thresholds)
    for assessment in assessments:
        assessment["similar"] = _similar_details(assessment["similar"], history)
        assessment["model_version"] = stored.version
        assessment["confidence_text"] = confidence_text(assessment["confidence"])
    return assessments


def assess_request(
    connection: Connection,
    stored: StoredModel,
    request: dict[str, Any],
    thresholds: Any,
    *,
    at: dt.datetime | None = None,
    frames: DeliveryFrames | None = None,
    history: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Assess a deployment request (`service`, `image`, `environment_group`, `id`) as if it
    were deployed now: what it would ship, its build, the service's recent history.
    `frames` and `history` (the training rows) are read here unless the caller, assessing
    several requests, has read them once already."""

    subject = str(request["id"])
    candidate = candidate_frames(
        connection,
        frames if frames is not None else load_delivery_frames(connection),
        subject_id=subject,
        service=request["service"],
        environment=request["environment_group"],
        image=request["image"],
        at=at or dt.datetime.now(dt.UTC),
    )
    row = deployment_features(candidate).loc[[subject]]
    if history is None:
        history = load_training_rows(connection)
    [assessment] = assess_rows(stored, row, thresholds, history)
    assessment["ships"] = {
        "commits": int(row["n_commits"].iloc[0]),
        "lines_added": float(row["la"].iloc[0]),
        "lines_deleted": float(row["ld"].iloc[0]),
    }
    return assessment


def drift(
    stored: StoredModel, table: pd.DataFrame, *, window_days: int, max_drop: float, now=None
) -> dict[str, Any]:
    """Compare the model's AUC on the deployments of the last `window_days` with the AUC it
    was accepted with; `retrain` is True when it fell by more than `max_drop`."""
    import pandas as pd

    now = now or dt.datetime.now(dt.UTC)
    recent = table[table["started_at"] >= pd.Timestamp(now - dt.timedelta(days=window_days))]
    reference = float(stored.evaluation["auc"])
    result: dict[str, Any] = {
        "model_version": stored.version,
        "reference_auc": reference,
        "window_days": window_days,
        "n_recent": len(recent),
        "recent_auc": None,
        "drop": None,
        "retrain": False,
    }
    if recent.empty or recent["label"].nunique() < 2:
        result["reason"] = "the window holds no failure and no success to compare: no verdict"
        return result
    recent_auc = roc_auc(recent["label"], stored.estimator.risk(recent))
    drop = reference - recent_auc
    result |= {"recent_auc": recent_auc, "drop": drop, "retrain": drop > max_drop}
    result["reason"] = (
        f"AUC fell by {drop:.3f} (> {max_drop}): retrain"
        if drop > max_drop
        else f"AUC moved by {-drop:+.3f}: within {max_drop}"
    )
    return result


def store_scores(connection: Connection, assessments: list[dict[str, Any]], **fields) -> int:
    """Upsert assessments into `risk_scores` (one per subject and model version)."""
    # lazy: warehouse.schema.ml loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.ml import RiskScore

    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            # The natural key decides the id, so a batch never collides with itself.
            "id": stable_id("risk_score", a["subject_kind"], a["id"], a["model_version"]),
            "subject_kind": a["subject_kind"],
            "subject_id": a["id"],
            "service": a["service"],
            "environment": a["environment"],
            "model_version": a["model_version"],
            "scored_at": now,
            "probability": a["probability"],
            "recommendation": a["recommendation"],
            "confidence": a["confidence"],
            "reasons": a["reasons"],
            "similar": a["similar"],
            "outcome": a.get("outcome"),
        }
        for a in assessments
    ]
    if not rows:
        return 0
    return bulk_upsert(
        connection, RiskScore.__table__, rows, ["subject_kind", "subject_id", "model_version"]
    ).written
