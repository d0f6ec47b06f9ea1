"""Domain records every delivery source returns and ingestion stores.

Real clients (Jenkins, GitLab, the deploy job, incident tools) and the sample organisation
both produce these frozen dataclasses (resources/delivery.py holds the interfaces they
implement); ingestion only ever sees them, never raw JSON.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

# The environment groups a cluster belongs to: the clusters file checks them (a client) and
# the warehouse constrains its columns to them (storage), so both read them from here.
ENVIRONMENT_GROUPS = ("dev", "staging", "prod")

# Kamei et al.'s 14 change metrics (TSE 2013) under the warehouse's column names, in the
# paper's order. The commits table stores them, a CommitRecord carries them and the risk
# model learns from them, so all of those read the names from here.
KAMEI_METRICS = (
    "ns",
    "nd",
    "nf",
    "entropy",
    "la",
    "ld",
    "lt",
    "fix",
    "ndev",
    "age",
    "nuc",
    "exp",
    "rexp",
    "sexp",
)
# The 13 of them that are measures (a number each, `CommitRecord.metrics`); `fix` is a flag
# with a field of its own.
KAMEI_MEASURES = tuple(name for name in KAMEI_METRICS if name != "fix")
# Two measures of the changed files' history that Kamei's 14 lack (issue 16; defined in
# ml/changes/metrics.py): the fix commits that changed them before, and the lines changed in
# them in the 30 days before. Apart from KAMEI_METRICS because the public datasets the CSV
# risk model learns from have Kamei's 14 only. A commit walked from git has both; a
# CommitRecord may carry them in `metrics`, and a commit stored without them has NULL there.
HISTORY_MEASURES = ("prior_fixes", "recent_churn")


@dataclass(frozen=True)
class UserRecord:
    name: str
    display_name: str
    email: str
    role: str  # developer | team_lead | operations | admin | viewer
    team: str | None = None
    slack_id: str | None = None


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    environment_group: str  # dev | staging | prod
    api_url: str | None = None
    kubernetes_version: str | None = None


@dataclass(frozen=True)
class PipelineRecord:
    ci_system: str  # jenkins | gitlab
    name: str  # Jenkins full job name or GitLab project path
    service: str | None
    repository: str | None
    default_branch: str | None
    url: str | None


@dataclass(frozen=True)
class StageRecord:
    external_id: str
    name: str
    position: int
    status: str
    started_at: dt.datetime | None
    duration: float | None
    parent_name: str | None = None
    queue_seconds: float | None = None
    attempt: int = 1
    error_message: str | None = None  # the source's error text, or the raw unknown status


@dataclass(frozen=True)
class ExecutionRecord:
    pipeline: str  # PipelineRecord.name
    external_id: str
    status: str
    triggered_by: str | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    duration: float | None
    commit_sha: str | None
    branch: str | None
    url: str | None
    sequence: int | None = None  # orders executions of a pipeline: build number, pipeline id
    queue_seconds: float | None = None
    error_message: str | None = None
    logs: str | None = None
    artifacts: dict[str, Any] | None = None
    stages: tuple[StageRecord, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RejectRecord:
    """A record a source sent that could not be parsed at all, kept with its payload.

    Sources yield these among their executions instead of failing the whole batch; storage
    keeps each one once in `ingestion_rejects` (see `warehouse.schema.ingestion`).
    """

    kind: str  # build | stages | pipeline | job
    pipeline: str  # the pipeline it belongs to ('' when it names none)
    key: str  # its id within the pipeline, or `sha1:` and a digest of its payload
    reason: str  # the parse error: system, object, field and what was wrong
    payload: Any  # the JSON value as received
    sequence: int | None = None  # the execution it stands for, when known


@dataclass(frozen=True)
class CommitRecord:
    """A commit with Kamei et al.'s 14 change metrics and the file-history measures (None or
    absent where unknown)."""

    repository: str
    sha: str
    author: str
    committed_at: dt.datetime
    message: str
    fix: bool
    # by name: the KAMEI_MEASURES (every metric but `fix`) and any HISTORY_MEASURES known
    metrics: dict[str, float]


@dataclass(frozen=True)
class DeploymentRecord:
    external_id: str
    service: str
    environment: str
    cluster: str | None
    image: str | None
    version: str | None
    commit_from: str | None
    commit_to: str | None
    kind: str  # release | hotfix | rollback
    status: str
    started_at: dt.datetime
    completed_at: dt.datetime | None
    triggered_by: str | None
    execution: tuple[str, str] | None = None  # (pipeline name, execution external id)
    commits: tuple[tuple[str, str], ...] = ()  # (repository, sha) shipped by this deployment


@dataclass(frozen=True)
class IncidentRecord:
    external_id: str
    service: str
    environment: str
    severity: str
    title: str
    opened_at: dt.datetime
    resolved_at: dt.datetime | None
    caused_by_deployment: str | None = None  # DeploymentRecord.external_id
    restored_by_deployment: str | None = None


@dataclass(frozen=True)
class StoredStage:
    """A finished stage of a CI execution already in the warehouse, with its pipeline: what
    live mode derives deployments from (storage reads it, resources/derived.py decides)."""

    pipeline: str
    service: str | None
    repository: str | None
    build: str  # the execution's external id
    commit_sha: str | None
    triggered_by: str | None
    stage_id: str  # the stage's external id
    stage: str
    status: str  # success | failed | aborted
    started_at: dt.datetime
    duration: float | None


@dataclass(frozen=True)
class CIRead:
    """What one CI source returned for a run, rejects included, read before the transaction
    that `store_ci` (warehouse/store/ingest.py) writes it in. `None`: that part was not read."""

    pipelines: list[PipelineRecord | RejectRecord] | None = None
    executions: list[ExecutionRecord | RejectRecord] | None = None
