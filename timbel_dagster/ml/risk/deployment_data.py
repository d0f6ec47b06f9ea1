"""The warehouse rows the deployment-risk features are computed from, as DataFrames.

Four queries, each one set-based statement, work on SQLite and PostgreSQL alike; the feature
code in `deployment_features.py` then works on plain frames, so that tests can build the
frames by hand.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timbel_dagster.ml.risk.data import FEATURES
from timbel_dagster.records.delivery import HISTORY_MEASURES
from timbel_dagster.records.image_ref import parse_image
from timbel_dagster.security.image_ref import known_digest
from timbel_dagster.warehouse.read.frames import counted_incident, duplicate_deployment

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

# Kamei's 14 change metrics and the changed files' history, as the commits table and the
# risk model name them (NULL, read as NaN, where a commit was stored without the history).
CHANGE_COLUMNS = (*FEATURES, *HISTORY_MEASURES)
# A git commit id, full (SHA-1 or SHA-256) or abbreviated as `git rev-parse --short` does.
_COMMIT = re.compile(r"[0-9a-f]{7,64}")


@dataclass(frozen=True)
class DeliveryFrames:
    """Deployments with what they shipped, the builds behind them and the incidents after."""

    deployments: pd.DataFrame  # id, service, environment, kind, status, started_at, ...
    shipped: pd.DataFrame  # deployment_id, committed_at, author and the CHANGE_COLUMNS
    executions: pd.DataFrame  # id, pipeline_id, started_at, duration, status, stage counts
    incidents: pd.DataFrame  # service, environment, opened_at, caused_by_deployment_id


def _frame(connection: Connection, query, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(connection.execute(query).all(), columns=columns)


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    import pandas as pd

    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def load_delivery_frames(connection: Connection) -> DeliveryFrames:
    """Read every deployment, the commits each shipped, the builds and the incidents."""
    from sqlalchemy import case, func, select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import (
        Commit,
        Deployment,
        DeploymentCommit,
        Incident,
        PipelineExecution,
        StageExecution,
    )

    deployment_columns = [
        "id",
        "service",
        "environment",
        "kind",
        "status",
        "started_at",
        "completed_at",
        "execution_id",
        "image",
        "commit_to",
    ]
    # Counted once: a CI-derived row repeating one of Timbel's own is left out (frames.py).
    deployments = _frame(
        connection,
        select(*(getattr(Deployment, c) for c in deployment_columns)).where(
            ~duplicate_deployment()
        ),
        deployment_columns,
    )
    shipped = _frame(
        connection,
        select(
            DeploymentCommit.deployment_id,
            Commit.committed_at,
            Commit.author,
            *(getattr(Commit, c) for c in CHANGE_COLUMNS),
        ).join(Commit, Commit.id == DeploymentCommit.commit_id),
        ["deployment_id", "committed_at", "author", *CHANGE_COLUMNS],
    )
    stage_counts = (
        select(
            StageExecution.execution_id,
            func.sum(case((StageExecution.status == "failed", 1), else_=0)).label("failed"),
            func.max(StageExecution.attempt).label("max_attempt"),
        )
        .group_by(StageExecution.execution_id)
        .subquery()
    )
    executions = _frame(
        connection,
        select(
            PipelineExecution.id,
            PipelineExecution.pipeline_id,
            PipelineExecution.started_at,
            PipelineExecution.duration,
            PipelineExecution.status,
            PipelineExecution.commit_sha,
            func.coalesce(stage_counts.c.failed, 0),
            func.coalesce(stage_counts.c.max_attempt, 1),
        ).outerjoin(stage_counts, stage_counts.c.execution_id == PipelineExecution.id),
        [
            "id",
            "pipeline_id",
            "started_at",
            "duration",
            "status",
            "commit_sha",
            "failed_stages",
            "max_attempt",
        ],
    )
    incidents = _frame(
        connection,
        select(
            Incident.service,
            Incident.environment,
            Incident.opened_at,
            Incident.caused_by_deployment_id,
        ).where(counted_incident()),
        ["service", "environment", "opened_at", "caused_by_deployment_id"],
    )
    return DeliveryFrames(
        deployments=_utc(deployments, "started_at", "completed_at"),
        shipped=_utc(shipped, "committed_at"),
        executions=_utc(executions, "started_at"),
        incidents=_utc(incidents, "opened_at"),
    )


def stored_revision(connection: Connection, image: str) -> str | None:
    """The source revision `registry_images` stores for `image` (its config's
    `org.opencontainers.image.revision` label, or a fallback), found by the digest it names
    or its tag resolves to there; None when not stored or not an image reference. Only the
    warehouse is read: callers inside a transaction never wait on the registry."""
    from sqlalchemy import select

    # lazy: warehouse.schema.registry loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.registry import RegistryImage as R

    try:
        digest = known_digest(connection, parse_image(image))
    except ValueError:
        return None
    if not digest:
        return None
    # One digest is one image config, so every row of it carries the same labels.
    return connection.execute(
        select(R.revision)
        .where(R.digest == digest, R.revision.is_not(None))
        .order_by(R.last_seen.desc())
        .limit(1)
    ).scalar()


def _labelled_commit(connection: Connection, service: str, image: str) -> str | None:
    """The commit the image's own labels name, as `registry_images` stores them; an
    abbreviated one is expanded to the one build or stored commit of `service` it
    abbreviates (kept as it is when none or several do)."""
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Commit, Pipeline, PipelineExecution

    revision = (stored_revision(connection, image) or "").lower()
    if not _COMMIT.fullmatch(revision):
        return None  # no label, or a revision that is not a git commit id
    if len(revision) in (40, 64):
        return revision
    repositories = select(Pipeline.repository).where(Pipeline.service == service)
    for query in (
        select(PipelineExecution.commit_sha)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(Pipeline.service == service),
        select(Commit.sha).where(Commit.repository.in_(repositories)),
    ):
        column = query.selected_columns[0]
        matches = connection.execute(
            query.where(column.startswith(revision, autoescape=True)).distinct().limit(2)
        ).scalars().all()  # fmt: skip
        if len(matches) == 1:
            return matches[0]
    return revision


def _image_commit(connection: Connection, service: str, image: str) -> str:
    """The commit an image was built from: its labels say so (`registry_images.revision`),
    else a deployment of the same image knows it, else the build that produced it (its
    artifacts name the image, or its tag is the commit's prefix)."""
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Deployment, Pipeline, PipelineExecution

    labelled = _labelled_commit(connection, service, image)
    if labelled:
        return labelled
    known = connection.execute(
        select(Deployment.commit_to)
        .where(Deployment.image == image, Deployment.commit_to.is_not(None))
        .limit(1)
    ).scalar()
    if known:
        return known
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    builds = connection.execute(
        select(PipelineExecution.commit_sha, PipelineExecution.artifacts)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(Pipeline.service == service, PipelineExecution.commit_sha.is_not(None))
        .order_by(PipelineExecution.started_at.desc())
    ).all()
    for sha, artifacts in builds:
        built = (artifacts or {}).get("image")
        if (built and image.endswith(built)) or (len(tag) >= 7 and sha.startswith(tag)):
            return sha
    raise LookupError(
        f"cannot tell which commit image {image} holds: registry_images has no revision "
        f"label for it and no deployment or build of {service} names it (its tag is not a "
        "commit of the service either)"
    )


def image_commit(connection: Connection, service: str, image: str) -> str | None:
    """The commit `image` was built from (as `candidate_frames` finds it), or None when
    neither its stored revision label nor a deployment or build of `service` names it."""
    try:
        return _image_commit(connection, service, image)
    except LookupError:
        return None


def candidate_frames(
    connection: Connection,
    frames: DeliveryFrames,
    *,
    subject_id: str,
    service: str,
    environment: str,
    image: str,
    at: dt.datetime,
) -> DeliveryFrames:
    """`frames` plus one pending deployment of `image` to `environment` starting at `at`,
    shipping the service's commits since its last successful deployment there — so that the
    feature code treats a request exactly like the past deployments it learnt from."""
    import pandas as pd
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import (
        Commit,
        Deployment,
        Pipeline,
        PipelineExecution,
    )

    sha = _image_commit(connection, service, image)
    repositories = connection.execute(
        select(Pipeline.repository).where(Pipeline.service == service).distinct()
    ).scalars()
    repositories = [r for r in repositories if r]
    head = connection.execute(
        select(Commit.committed_at).where(Commit.sha == sha, Commit.repository.in_(repositories))
    ).scalar()
    if head is None:
        raise LookupError(f"commit {sha[:12]} of image {image} is not in the warehouse")
    last = connection.execute(
        select(Deployment.commit_to)
        .where(
            Deployment.service == service,
            Deployment.environment == environment,
            Deployment.status == "success",
            Deployment.started_at < at,
        )
        .order_by(Deployment.started_at.desc())
        .limit(1)
    ).scalar()
    since = (
        connection.execute(select(Commit.committed_at).where(Commit.sha == last)).scalar()
        if last
        else None
    )
    query = select(
        Commit.committed_at, Commit.author, *(getattr(Commit, c) for c in CHANGE_COLUMNS)
    )
    query = query.where(Commit.repository.in_(repositories), Commit.committed_at <= head)
    if since is not None:
        query = query.where(Commit.committed_at > since)
    shipped = _frame(connection, query, ["committed_at", "author", *CHANGE_COLUMNS])
    shipped.insert(0, "deployment_id", subject_id)
    build = connection.execute(
        select(PipelineExecution.id)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(Pipeline.service == service, PipelineExecution.commit_sha == sha)
        .order_by(PipelineExecution.started_at.desc())
        .limit(1)
    ).scalar()
    pending = pd.DataFrame(
        [
            {
                "id": subject_id,
                "service": service,
                "environment": environment,
                "kind": "release",
                "status": "pending",
                "started_at": pd.Timestamp(at),
                "completed_at": pd.NaT,
                "execution_id": build,
                "image": image,
                "commit_to": sha,
            }
        ]
    )
    return DeliveryFrames(
        deployments=_utc(
            pd.concat([frames.deployments, pending], ignore_index=True),
            "started_at",
            "completed_at",
        ),
        shipped=_utc(pd.concat([frames.shipped, shipped], ignore_index=True), "committed_at"),
        executions=frames.executions,
        incidents=frames.incidents,
    )
