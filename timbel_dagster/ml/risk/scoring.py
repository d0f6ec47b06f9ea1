"""Scoring with the stored risk model: recent deployments, pending requests, one request.

An assessment is stored in `risk_scores` and, for a request, on the request itself
(`deployment_requests.risk`), which is what approvers see.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.models.store import load_model, load_training_rows
from timbel_dagster.ml.risk.advisor import MODEL_NAME, assess_request, assess_rows, store_scores
from timbel_dagster.ml.risk.deployment_data import load_delivery_frames
from timbel_dagster.ml.risk.model import DecisionCosts, RiskThresholds

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from timbel_dagster.ml.models.store import StoredModel
    from timbel_dagster.settings import Settings


def costs_from(settings: Settings) -> DecisionCosts:
    return DecisionCosts(
        failed_deployment=settings.timbel_risk_cost_failed_deployment,
        review=settings.timbel_risk_cost_review,
        held_back=settings.timbel_risk_cost_held_back,
        review_catch_rate=settings.timbel_risk_review_catch_rate,
    )


def thresholds_from(settings: Settings) -> RiskThresholds:
    """The cut-offs the costs give, unless both overrides are set."""
    approve, reject = settings.timbel_risk_approve_below, settings.timbel_risk_reject_from
    if approve is not None and reject is not None:
        return RiskThresholds(approve_below=approve, reject_at=reject)
    return costs_from(settings).thresholds()


def _attach(connection: Connection, request: dict[str, Any], assessment: dict[str, Any]) -> None:
    from sqlalchemy import update

    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import DeploymentRequest

    store_scores(
        connection,
        [
            assessment
            | {
                "subject_kind": "request",
                "service": request["service"],
                "environment": request["environment_group"],
            }
        ],
    )
    risk = {k: v for k, v in assessment.items() if k not in ("id",)}
    risk["scored_at"] = dt.datetime.now(dt.UTC).isoformat()
    connection.execute(
        update(DeploymentRequest).where(DeploymentRequest.id == request["id"]).values(risk=risk)
    )


def score_request(engine: Engine, settings: Settings, ref: str) -> dict[str, Any]:
    """Assess one request (by number or id prefix) with the newest model, store the
    assessment on it and in `risk_scores`, and return it."""
    # lazy: deploy.lookup loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.lookup import find

    with engine.connect() as connection:
        request = find(connection, ref)
        stored = load_model(connection, MODEL_NAME)
        assessment = assess_request(connection, stored, request, thresholds_from(settings))
    with engine.begin() as connection:
        _attach(connection, request, assessment)
    return assessment | {
        "request": request["number"],
        "service": request["service"],
        "environment": request["environment_group"],
        "image": request["image"],
    }


def score_recent_and_pending(
    engine: Engine,
    settings: Settings,
    *,
    days: int,
    environments: list[str],
    log: Any,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Assess the deployments of the last `days` in `environments` and every pending
    request; a request that cannot be assessed (its image's commit is unknown) is logged and
    skipped, not fatal."""
    import pandas as pd
    from sqlalchemy import select

    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import DeploymentRequest

    now = now or dt.datetime.now(dt.UTC)
    thresholds = thresholds_from(settings)
    with engine.connect() as connection:
        stored: StoredModel = load_model(connection, MODEL_NAME)
        table = load_training_rows(connection)
        recent = table[
            (table["started_at"] >= pd.Timestamp(now - dt.timedelta(days=days)))
            & table["environment_name"].isin(environments)
        ]
        assessed = assess_rows(stored, recent, thresholds, table) if len(recent) else []
        for assessment, (_, row) in zip(assessed, recent.iterrows(), strict=True):
            assessment |= {
                "subject_kind": "deployment",
                "service": row["service"],
                "environment": row["environment_name"],
                "outcome": int(row["label"]),
            }
        pending = connection.execute(
            select(DeploymentRequest.__table__).where(DeploymentRequest.status == "pending")
        ).mappings()
        requests = []
        frames = load_delivery_frames(connection)  # once for every pending request
        for request in map(dict, pending):
            try:
                assessment = assess_request(
                    connection, stored, request, thresholds, at=now, frames=frames, history=table
                )
                requests.append((request, assessment))
            except LookupError as error:
                log.warning(f"request #{request['number']} not assessed: {error}")
    with engine.begin() as connection:
        written = store_scores(connection, assessed)
        for request, assessment in requests:
            _attach(connection, request, assessment)
    everything = [
        {k: a[k] for k in ("subject_kind", "service", "environment", "probability")}
        | {"recommendation": a["recommendation"]}
        for a in assessed
    ] + [
        {
            "subject_kind": "request",
            "service": r["service"],
            "environment": r["environment_group"],
            "probability": a["probability"],
            "recommendation": a["recommendation"],
        }
        for r, a in requests
    ]
    return {
        "scored": written + len(requests),
        "deployments": len(assessed),
        "requests": len(requests),
        "model_version": stored.version,
        "riskiest": sorted(everything, key=lambda a: a["probability"], reverse=True),
    }
