"""Warehouse tables of the ML assets: trained models with their evaluation, risk scores,
pipeline bottleneck findings and cost forecasts.

Models live in the warehouse (not in a Dagster IO manager's files) so that the CLI, the
approval flow and notebooks load the same fitted model the assets trained.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Float, Index, Integer, LargeBinary, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, _now
from timbel_dagster.warehouse.schema.types import JSONType


class MlModel(Base):
    """One trained version of a model: the fitted estimator (joblib), the code version that
    trained it and its time-ordered evaluation. `artifact_signature` is the HMAC-SHA256 that
    `ml/models/signing.py` checks before the artifact is unpickled (NULL: stored before models
    were signed, never loaded)."""

    __tablename__ = "ml_models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    code_version: Mapped[str] = mapped_column(String(32))
    trained_at: Mapped[dt.datetime] = mapped_column(default=_now)
    trained_until: Mapped[dt.datetime | None]  # the newest training example's time
    n_train: Mapped[int] = mapped_column(Integer)
    n_test: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[str]] = mapped_column(JSONType)
    evaluation: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(String(256))  # schedule, drift, manual
    artifact: Mapped[bytes] = mapped_column(LargeBinary)
    artifact_signature: Mapped[str | None] = mapped_column(String(80))


class RiskTrainingRow(Base):
    """One past deployment as the risk model sees it: its features and its outcome."""

    __tablename__ = "risk_training_rows"
    __table_args__ = (Index(None, "started_at"),)

    deployment_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    service: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime]
    label: Mapped[int] = mapped_column(Integer)
    features: Mapped[dict[str, Any]]
    built_at: Mapped[dt.datetime] = mapped_column(default=_now)


class RiskScore(Base):
    """The advisor's assessment of one deployment or pending deployment request."""

    __tablename__ = "risk_scores"
    __table_args__ = (
        UniqueConstraint("subject_kind", "subject_id", "model_version"),
        Index(None, "scored_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    subject_kind: Mapped[str] = mapped_column(String(16))  # deployment | request
    subject_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[int] = mapped_column(Integer)
    scored_at: Mapped[dt.datetime] = mapped_column(default=_now)
    probability: Mapped[float] = mapped_column(Float)
    recommendation: Mapped[str] = mapped_column(String(16))  # approve | review | reject
    confidence: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    similar: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    outcome: Mapped[int | None] = mapped_column(Integer)  # known for past deployments


class BottleneckFinding(Base):
    """One finding of the latest bottleneck analysis: a critical-path stage, a regression, a
    flaky stage or a suggestion with the time it would save."""

    __tablename__ = "bottleneck_findings"
    __table_args__ = (Index(None, "pipeline", "kind"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    analysed_at: Mapped[dt.datetime] = mapped_column(default=_now)
    pipeline: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(512))
    seconds_saved_per_run: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]


class CostForecast(Base):
    """One forecast hour of usage and cost for a scope (the total, a cluster, a namespace or a
    tenant), with 80 % and 95 % prediction intervals."""

    __tablename__ = "cost_forecasts"
    __table_args__ = (UniqueConstraint("scope", "key", "hour"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    generated_at: Mapped[dt.datetime] = mapped_column(default=_now)
    scope: Mapped[str] = mapped_column(String(16))  # total | cluster | namespace | tenant
    key: Mapped[str] = mapped_column(String(300))  # "" for the total, cluster/namespace ...
    hour: Mapped[dt.datetime]
    cost_usd: Mapped[float] = mapped_column(Float)
    cost_lo80: Mapped[float] = mapped_column(Float)
    cost_hi80: Mapped[float] = mapped_column(Float)
    cost_lo95: Mapped[float] = mapped_column(Float)
    cost_hi95: Mapped[float] = mapped_column(Float)
    cpu_cores: Mapped[float | None] = mapped_column(Float)
    memory_gib: Mapped[float | None] = mapped_column(Float)


class CostSuggestion(Base):
    """A cost-saving suggestion of the latest forecast: rightsizing or an idle namespace."""

    __tablename__ = "cost_suggestions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    generated_at: Mapped[dt.datetime] = mapped_column(default=_now)
    kind: Mapped[str] = mapped_column(String(32))
    cluster: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(128))
    workload: Mapped[str | None] = mapped_column(String(256))
    monthly_saving_usd: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
