"""Timbel's own deployments and rollbacks as `deployments` rows (source `timbel`), so that DORA
and the risk model learn from what Timbel does, not only from what CI reports.

Granularity: one row per action, not per cluster. A deployment request rolled out by the
`deploy` job is one release (or hotfix, when fast-tracked) row, `request-<number>`, whatever
the number of clusters of its group: DORA counts changes reaching an environment, and the
risk model learns one outcome per change (per-cluster rows would count a three-cluster
rollout three times and repeat its features). `cluster` is set when the group has one
cluster; the per-cluster detail stays in `rollout_targets`. A rollback is one row too: the
deploy strategy's rollbacks of a request are `request-<number>-rollback`, a `rollback` job
run is `rollback-<id of its rollbacks row>` (one cluster).

Each row is written in the transaction of the effect it records (the request going to
`deploying`, the request settled, the rollback finished), keyed on (source, external_id), so
a retried step rewrites the same row. A release's status follows its request: `running`,
then `success`, `failed` or `rolled_back` (also when a later `rollback` job rolls it back).

Incidents (source `timbel`, as CI-derived history does): a production release that fails or
is rolled back opens one, `request-<number>`, caused by the release; it is resolved by the
rollback that restored the service or else by the service's next successful production
release, which DORA's time to restore measures.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from timbel_dagster.ml.risk.deployment_data import image_commit
from timbel_dagster.warehouse.schema import models as m
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.store.loaders import deployment_id
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SOURCE = "timbel"
# The request's status -> its release row's status (the CHECK of deployments.status).
RELEASE_STATUS = {
    "deploying": "running",
    "deployed": "success",
    "failed": "failed",
    "rolled_back": "rolled_back",
}
_PRODUCTION = "prod"


def release_external_id(request: dict[str, Any]) -> str:
    return f"request-{request['number']}"


def version_of(image: str | None) -> str | None:
    """The tag of `image` (or the start of its digest), as the `version` column holds it."""
    if not image:
        return None
    if "@" in image:
        return image.rsplit("@", 1)[1].removeprefix("sha256:")[:12]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1][:128] if ":" in last else None


def _build(connection: Connection, service: str, image: str) -> tuple[str | None, Any]:
    """The commit the image was built from and the build that did it, where known."""
    from sqlalchemy import select

    sha = image_commit(connection, service, image)
    if sha is None:
        return None, None
    build = connection.execute(
        select(m.PipelineExecution.id)
        .join(m.Pipeline, m.Pipeline.id == m.PipelineExecution.pipeline_id)
        .where(m.Pipeline.service == service, m.PipelineExecution.commit_sha == sha)
        .order_by(m.PipelineExecution.started_at.desc())
        .limit(1)
    ).scalar()
    return sha, build


def _previous_commit(
    connection: Connection, service: str, environment: str, before: dt.datetime
) -> str | None:
    from sqlalchemy import select

    D = m.Deployment
    return connection.execute(
        select(D.commit_to)
        .where(
            D.service == service,
            D.environment == environment,
            D.status == "success",
            D.commit_to.is_not(None),
            D.started_at < before,
        )
        .order_by(D.started_at.desc())
        .limit(1)
    ).scalar()


def _existing(connection: Connection, external_id: str) -> dict[str, Any] | None:
    from sqlalchemy import select

    table = m.Deployment.__table__
    row = connection.execute(
        select(table).where(table.c.source == SOURCE, table.c.external_id == external_id)
    ).mappings().first()  # fmt: skip
    return dict(row) if row else None


def _store(connection: Connection, row: dict[str, Any]) -> uuid.UUID:
    row["id"] = deployment_id(SOURCE, row["external_id"])
    row["source"] = SOURCE
    bulk_upsert(connection, m.Deployment.__table__, [row], ["source", "external_id"])
    return row["id"]


def record_release(
    connection: Connection,
    request: dict[str, Any],
    status: str,
    clusters: list[str],
    at: dt.datetime,
    triggered_by: str | None,
    failed_at: dt.datetime | None = None,
) -> uuid.UUID:
    """Write (or update) the request's release row; `status` is the request's status.

    The first write (status `deploying`) fixes `started_at`, the commit and the build; the
    settling write adds the outcome and `completed_at`. A successful production release
    resolves the service's open incidents; a failed one opens one at `failed_at` (when the
    failure was known; default `at`).
    """
    external_id = release_external_id(request)
    existing = _existing(connection, external_id)
    environment = request["environment_group"]
    if existing is None:
        started = at
        commit_to, build = _build(connection, request["service"], request["image"])
        commit_from = _previous_commit(connection, request["service"], environment, started)
    else:
        started, commit_to, build, commit_from = (
            existing["started_at"], existing["commit_to"], existing["execution_id"],
            existing["commit_from"],
        )  # fmt: skip
    outcome = RELEASE_STATUS[status]
    release = _store(
        connection,
        {
            "external_id": external_id,
            "service": request["service"],
            "environment": environment,
            "cluster": clusters[0] if len(clusters) == 1 else None,
            "image": request["image"],
            "version": version_of(request["image"]),
            "commit_from": commit_from,
            "commit_to": commit_to,
            "kind": "hotfix" if request.get("fast_track") else "release",
            "status": outcome,
            "started_at": started,
            "completed_at": None if outcome == "running" else at,
            "triggered_by": triggered_by or request.get("requested_by"),
            "execution_id": build,
        },
    )
    if environment == _PRODUCTION and outcome == "success":
        _resolve_open_incidents(connection, request["service"], at, release)
    elif environment == _PRODUCTION and outcome in ("failed", "rolled_back"):
        open_incident(connection, request, failed_at or at)
    return release


def record_rollback(
    connection: Connection,
    request: dict[str, Any],
    external_id: str,
    clusters: list[str],
    image: str | None,
    done: bool,
    started_at: dt.datetime,
    completed_at: dt.datetime,
    triggered_by: str | None,
) -> uuid.UUID:
    """Write one rollback row; when it is done the request's release becomes `rolled_back`
    and, in production, the incident it opened is resolved by this rollback."""
    from sqlalchemy import update

    commit_to = image_commit(connection, request["service"], image) if image else None
    rollback = _store(
        connection,
        {
            "external_id": external_id,
            "service": request["service"],
            "environment": request["environment_group"],
            "cluster": clusters[0] if len(clusters) == 1 else None,
            "image": image,
            "version": version_of(image),
            "commit_from": None,
            "commit_to": commit_to,
            "kind": "rollback",
            "status": "success" if done else "failed",
            "started_at": started_at,
            "completed_at": completed_at,
            "triggered_by": triggered_by,
            "execution_id": None,
        },
    )
    if done:
        release = deployment_id(SOURCE, release_external_id(request))
        connection.execute(
            update(m.Deployment)
            .where(m.Deployment.id == release, m.Deployment.status != "rolled_back")
            .values(status="rolled_back", updated_at=completed_at)
        )
        if request["environment_group"] == _PRODUCTION:
            open_incident(connection, request, started_at)
            _resolve_open_incidents(connection, request["service"], completed_at, rollback)
    return rollback


def open_incident(connection: Connection, request: dict[str, Any], at: dt.datetime) -> None:
    """Open the incident of a production release that failed or was rolled back, once: an
    incident already recorded for the request keeps its opening time."""
    from sqlalchemy import select

    external_id = release_external_id(request)
    release = deployment_id(SOURCE, external_id)
    row = {
        "id": stable_id("incidents", SOURCE, external_id),
        "source": SOURCE,
        "external_id": external_id,
        "service": request["service"],
        "environment": request["environment_group"],
        "severity": "unknown",
        "title": f"{request['service']}: production deployment #{request['number']} failed",
        "opened_at": at,
        "resolved_at": None,
        "caused_by_deployment_id": release,
        "restored_by_deployment_id": None,
    }
    if connection.execute(select(m.Incident.id).where(m.Incident.id == row["id"])).first() is None:
        bulk_upsert(connection, m.Incident.__table__, [row], ["source", "external_id"])


def _resolve_open_incidents(
    connection: Connection, service: str, at: dt.datetime, restored_by: uuid.UUID
) -> None:
    from sqlalchemy import update

    I = m.Incident  # noqa: E741
    connection.execute(
        update(I)
        .where(
            I.source == SOURCE,
            I.service == service,
            I.environment == _PRODUCTION,
            I.resolved_at.is_(None),
            I.opened_at <= at,
        )
        .values(resolved_at=at, restored_by_deployment_id=restored_by, updated_at=at)
    )
