"""When the ML models are retrained: weekly, and when the risk model's AUC on the last
deployments has fallen by more than TIMBEL_RISK_DRIFT_AUC_DROP."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.ml.models.store import ModelSignatureError, NoModelError, load_model
from timbel_dagster.ml.risk.advisor import MODEL_NAME, drift
from timbel_dagster.ml.risk.deployment_data import load_delivery_frames
from timbel_dagster.ml.risk.deployment_features import deployment_features
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.engine import get_engine

ML_RETRAIN_JOB = "ml_retrain"


def retrain_request(reason: str, run_key: str) -> dg.RunRequest:
    """Retrain the risk model (and refresh what depends on it), saying why."""
    return dg.RunRequest(
        run_key=run_key,
        job_name=ML_RETRAIN_JOB,
        run_config={"ops": {"ml__risk_model": {"config": {"reason": reason}}}},
        tags={"timbel/retrain_reason": reason},
    )


@dg.schedule(
    name="ml_retrain_weekly",
    job_name=ML_RETRAIN_JOB,
    cron_schedule="30 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Retrain the risk model, re-run bottleneck analysis and the cost forecast "
    "each Monday at 03:30 UTC.",
)
def ml_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return retrain_request("schedule", f"ml-retrain-{context.scheduled_execution_time:%Y-%m-%d}")


def drift_verdict(warehouse_url: str, settings) -> dict:
    """Rebuild the features of every deployment (outcomes known since the model was trained
    included) and compare the stored model's AUC on the recent ones with its evaluation."""

    with get_engine(warehouse_url).connect() as connection:
        stored = load_model(connection, MODEL_NAME)
        table = deployment_features(load_delivery_frames(connection))
    return drift(
        stored,
        table,
        window_days=settings.timbel_risk_drift_window_days,
        max_drop=settings.timbel_risk_drift_auc_drop,
    )


@dg.sensor(
    name="risk_drift_sensor",
    job_name=ML_RETRAIN_JOB,
    minimum_interval_seconds=24 * 3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Daily: retrain the risk model when its AUC on the last 30 days' deployments "
    "fell by more than TIMBEL_RISK_DRIFT_AUC_DROP from the AUC it was accepted with.",
)
def risk_drift_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    try:
        verdict = drift_verdict(warehouse.url(), get_settings())
    except (NoModelError, ModelSignatureError) as error:  # a refused model is never unpickled
        return dg.SkipReason(str(error))
    context.log.info(verdict["reason"])
    if not verdict["retrain"]:
        return dg.SkipReason(verdict["reason"])
    # One retrain per model version: the new version gets its own verdict tomorrow.
    return retrain_request("drift", f"risk-drift-v{verdict['model_version']}")
