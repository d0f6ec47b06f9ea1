"""The deployment-risk advisor's assets: `ml/risk_training_set` (one row per past deployment),
`ml/risk_model` (the calibrated model with its time-ordered evaluation) and `ml/risk_scores`
(assessments of recent deployments and of pending deployment requests)."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.assets import plots
from timbel_dagster.assets.ingestion import OWNERS, markdown_table
from timbel_dagster.assets.metadata import rounded
from timbel_dagster.assets.ml.cards import card_metadata, risk_card
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.ml.models.store import (
    ModelSignatureError,
    NoModelError,
    load_model,
    load_training_rows,
    replace_training_rows,
    save_model,
    training_fingerprint,
)
from timbel_dagster.ml.risk.advisor import (
    MODEL_NAME,
    RISK_CODE_VERSION,
    RISK_FEATURES,
    time_split,
    train,
)
from timbel_dagster.ml.risk.calibration import calibration_table
from timbel_dagster.ml.risk.deployment_data import load_delivery_frames
from timbel_dagster.ml.risk.deployment_features import deployment_features
from timbel_dagster.ml.risk.model import fit_risk_model
from timbel_dagster.ml.risk.scoring import score_recent_and_pending
from timbel_dagster.settings import get_settings

EVALUATION_KEYS = (
    "auc",
    "pr_auc",
    "brier",
    "recall_at_20pct_effort",
    "baseline_la_auc",
    "baseline_rf_auc",
    "baseline_smallest_first_recall_at_20pct_effort",
)
COUNT_KEYS = ("n_train", "n_test")


@dg.asset(
    key=["ml", "risk_training_set"],
    group_name="ml",
    kinds={"pandas", "sql"},
    owners=OWNERS,
    deps=[
        ["deploy", "deployments"],
        ["deploy", "incidents"],
        ["cicd", "commits"],
        ["cicd", "stage_executions"],
    ],
    code_version=RISK_CODE_VERSION,
    description="One row per past release or hotfix: what it shipped (Kamei's change "
    "metrics), how its build went, the service's recent history, its timing and outcome.",
)
def risk_training_set(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.engine().connect() as connection:
        table = deployment_features(load_delivery_frames(connection))
    with warehouse.engine().begin() as connection:
        stored = replace_training_rows(connection, table)
    failed = int(table["label"].sum()) if stored else 0
    context.log.info(f"{stored} deployments, {failed} failed or caused an incident")
    return dg.MaterializeResult(
        metadata=rounded(
            {
                "dagster/row_count": dg.MetadataValue.int(stored),
                "failed_deployments": dg.MetadataValue.int(failed),
                "failure_rate": dg.MetadataValue.float(failed / stored if stored else 0.0),
            }
        )
    )


class RiskModelConfig(dg.Config):
    # Why this version is trained: schedule (skipped when the history has not changed since
    # the newest version), drift or manual (always trained).
    reason: str = "schedule"


@dg.asset(
    key=["ml", "risk_model"],
    group_name="ml",
    kinds={"scikitlearn", "sql"},
    owners=OWNERS,
    deps=[risk_training_set],
    code_version=RISK_CODE_VERSION,
    description="The calibrated deployment-risk classifier, validated in time order (older "
    "deployments train, newer test) against ranking by lines added and smallest-first.",
)
def risk_model(
    context: dg.AssetExecutionContext, config: RiskModelConfig, warehouse: WarehouseResource
):
    with warehouse.engine().connect() as connection:
        table = load_training_rows(connection)
        try:
            latest = load_model(connection, MODEL_NAME)
        except NoModelError:
            latest = None
        except ModelSignatureError as error:
            # Never unpickled; training a new, signed version is exactly the way out.
            context.log.warning(f"{error}; training a new version")
            latest = None
    fingerprint = training_fingerprint(table)
    if (
        latest is not None
        and config.reason == "schedule"
        and latest.code_version == RISK_CODE_VERSION
        and latest.evaluation.get("training_fingerprint") == fingerprint
    ):
        # Nothing new to learn from: the same code on the same history gives the same model.
        context.log.info(f"{MODEL_NAME} v{latest.version} was trained on this history already")
        metadata = _evaluation_metadata(latest.evaluation, latest.version, "unchanged", table)
        metadata["rows_written"] = dg.MetadataValue.int(0)
        return dg.MaterializeResult(metadata=metadata)
    model, evaluation = train(table)
    evaluation["training_fingerprint"] = fingerprint
    with warehouse.engine().begin() as connection:
        version = save_model(
            connection,
            MODEL_NAME,
            model,
            code_version=RISK_CODE_VERSION,
            features=list(model.features),
            evaluation=evaluation,
            n_train=len(table),
            n_test=int(evaluation["n_test"]),
            trained_until=table["started_at"].iloc[-1].to_pydatetime(),
            reason=config.reason,
        )
    context.log.info(
        f"{MODEL_NAME} v{version}: AUC {evaluation['auc']:.3f} (lines added "
        f"{evaluation['baseline_la_auc']:.3f}, random forest {evaluation['baseline_rf_auc']:.3f})"
    )
    metadata = _evaluation_metadata(evaluation, version, config.reason, table)
    metadata["rows_written"] = dg.MetadataValue.int(1)
    return dg.MaterializeResult(metadata=metadata)


# Bins of predicted failure probability in the calibration plot: failures are rare, so the
# low probabilities are binned finely.
CALIBRATION_EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def _evaluation_metadata(evaluation: dict, version: int, reason: str, table) -> dict:
    # A figure the stored evaluation lacks is left out here; the model card says it is missing.
    metadata = {
        key: dg.MetadataValue.float(float(evaluation[key]))
        for key in EVALUATION_KEYS
        if evaluation.get(key) is not None
    }
    metadata |= {
        key: dg.MetadataValue.int(int(evaluation[key]))
        for key in COUNT_KEYS
        if evaluation.get(key) is not None
    }
    metadata["model_version"] = dg.MetadataValue.int(version)
    metadata["reason"] = dg.MetadataValue.text(reason)
    if evaluation.get("settings"):  # how the blend weights were chosen (issue 16 item 1)
        metadata["settings"] = dg.MetadataValue.text(str(evaluation["settings"]))
    calibration, figure = None, None
    if not table.empty:
        calibration = _held_out_calibration(table, evaluation)
        metadata["calibration"] = markdown_table(
            [
                {"predicted in": f"{max(b.left, 0):g} to {b.right:g}", **row}
                for b, row in calibration.to_dict("index").items()
            ],
            [
                "predicted in",
                "deployments",
                "predicted",
                "observed",
                "observed_lo95",
                "observed_hi95",
            ],
        )
        figure = plots.risk_calibration(calibration)
        if figure is not None:
            metadata["calibration_plot"] = figure
    card = risk_card(evaluation, version, table, calibration, figure and figure.value)
    metadata["model_card"] = card_metadata(card)
    return rounded(metadata)


def _held_out_calibration(table, evaluation: dict):
    """The calibration table of the evaluation's split: the model fitted on the oldest 80 %
    of `table` (as `train` evaluates it) scoring the newest 20 %."""
    import pandas as pd

    older, newer = time_split(table)
    features = tuple(evaluation.get("features") or RISK_FEATURES)
    model = fit_risk_model(older, features=features, label="label", group=None, random_state=0)
    probability = pd.Series(model.risk(newer), index=newer.index)
    return calibration_table(probability, newer["label"].astype(int), CALIBRATION_EDGES)


class RiskScoresConfig(dg.Config):
    days: int = 7  # deployments of the last N days are (re)assessed
    environments: list[str] = ["staging", "prod"]


@dg.asset(
    key=["ml", "risk_scores"],
    group_name="ml",
    kinds={"pandas", "sql"},
    owners=OWNERS,
    deps=[risk_model],
    code_version=RISK_CODE_VERSION,
    description="One row per assessed deployment or pending deployment request: failure "
    "probability, recommendation, confidence, top reasons and the most similar past "
    "deployments. Pending requests also carry it as their `risk`.",
)
def risk_scores(
    context: dg.AssetExecutionContext, config: RiskScoresConfig, warehouse: WarehouseResource
):
    summary = score_recent_and_pending(
        warehouse.engine(),
        get_settings(),
        days=config.days,
        environments=config.environments,
        log=context.log,
    )
    return dg.MaterializeResult(
        metadata={  # markdown and ints only: nothing to round
            "dagster/row_count": dg.MetadataValue.int(summary["scored"]),
            "deployments": dg.MetadataValue.int(summary["deployments"]),
            "pending_requests": dg.MetadataValue.int(summary["requests"]),
            "model_version": dg.MetadataValue.int(summary["model_version"]),
            "riskiest": markdown_table(
                summary["riskiest"],
                ["subject_kind", "service", "environment", "probability", "recommendation"],
            ),
        }
    )
