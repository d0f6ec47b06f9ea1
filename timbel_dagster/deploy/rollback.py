"""Rolling a service back in one cluster, exactly once, to its last known-good image.

Exactly once: the rollback row is inserted under the audit lock's sibling (a PostgreSQL
advisory lock, SQLite's single writer) with a unique idempotency key made of the deployment
and the bad image; a second trigger for the same deployment and image finds the row and does
nothing. Known-good: the image of the newest earlier request that was deployed to that
cluster and never rolled back from, else the image that ran before this deployment; never an
image a rollback has left. A rollback to a chosen revision (`target`, checked by
`rollback_target`) goes to that deployment's image instead; it is still once per deployment
and image, so a deployment rolled back already is not rolled back again to another one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from timbel_dagster.deploy import rollout
from timbel_dagster.warehouse.audit.chain import append_event

_LOCK_KEY = 7_215_509_331  # pg_advisory_xact_lock key of rollback decisions


def idempotency_key(request_id: Any, cluster: str, image: str) -> str:
    return f"rollback:{request_id}:{cluster}:{image}"


def known_good_image(connection: Any, request: dict[str, Any], cluster: str) -> str | None:
    from sqlalchemy import select

    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R
    from timbel_dagster.warehouse.schema.deploy import Rollback
    from timbel_dagster.warehouse.schema.deploy import RolloutTarget as T

    bad = set(
        connection.execute(
            select(Rollback.from_image).where(
                Rollback.service == request["service"], Rollback.cluster == cluster,
                Rollback.status.in_(("done", "planned")),
            )
        ).scalars()
    ) | {request["image"]}  # fmt: skip
    earlier = connection.execute(
        select(R.image)
        .join(T, T.request_id == R.id)
        .where(R.service == request["service"], R.number < request["number"])
        .where(T.cluster == cluster, T.status == "succeeded", R.status == "deployed")
        .order_by(R.number.desc())
    ).scalars()
    for image in earlier:
        if image not in bad:
            return image
    previous = connection.execute(
        select(T.previous_image).where(T.request_id == request["id"], T.cluster == cluster)
    ).scalar()
    return previous if previous and previous not in bad else None


def claim(
    engine: Any,
    request: dict[str, Any],
    cluster: str,
    trigger: str,
    reason: str,
    dry_run: bool,
    audit_details: Mapping[str, Any] | None = None,
    target: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Record the rollback decision, or None when another trigger has made it already
    (`audit_details` added to the audit event's: how an unverified run was launched).
    `target` ({"request", "image"}): the chosen past deployment to go back to, instead of
    the last known-good image."""
    from sqlalchemy import select, text

    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import Rollback, RolloutTarget

    key = idempotency_key(request["id"], cluster, request["image"])
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        if connection.execute(select(Rollback.id).where(Rollback.idempotency_key == key)).first():
            return None
        namespace = connection.execute(
            select(RolloutTarget.namespace).where(
                RolloutTarget.request_id == request["id"], RolloutTarget.cluster == cluster
            )
        ).scalar()
        chosen = {"to_request": target["request"]} if target else {}
        to_image = target["image"] if target else known_good_image(connection, request, cluster)
        row = {
            "id": uuid.uuid4(),
            "idempotency_key": key,
            "service": request["service"],
            "cluster": cluster,
            "namespace": namespace or "",
            "from_image": request["image"],
            "to_image": to_image,
            "trigger": trigger,
            "reason": reason,
            "status": "dry_run" if dry_run else "planned",
            "dry_run": dry_run,
            "details": {"request": request["number"], **chosen},
            "created_at": dt.datetime.now(dt.UTC),
        }
        connection.execute(Rollback.__table__.insert().values(**row))
        append_event(
            connection,
            actor=trigger,
            action="deploy.rollback.dry_run" if dry_run else "deploy.rollback",
            target=f"request #{request['number']} {cluster}",
            details={
                "from": request["image"],
                "to": to_image,
                **chosen,
                "reason": reason,
                **(audit_details or {}),
            },
        )
    return row


def roll_back(
    engine: Any,
    kubernetes: Any,
    request: dict[str, Any],
    cluster: str,
    trigger: str,
    reason: str,
    dry_run: bool = False,
    timeout: float = 600.0,
    poll: float = 2.0,
    log: Callable[[str], None] = lambda line: None,
    audit_details: Mapping[str, Any] | None = None,
    target: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Roll back once, to the last known-good image or to `target` ({"request", "image"}, a
    past deployment `rollback_target` checked); None when this deployment and image were
    rolled back already."""
    from sqlalchemy import update

    # lazy: deploy.deployment_rows loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.deployment_rows import record_rollback
    from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, Rollback

    row = claim(engine, request, cluster, trigger, reason, dry_run, audit_details, target)
    if row is None:
        log(f"cluster {cluster}: {request['service']} {request['image']} was rolled back already")
        return None
    if dry_run:
        log(f"dry run: would roll {cluster} back from {request['image']} to {row['to_image']}")
        return row
    status, error = "done", None
    try:
        if row["to_image"] is None:
            raise rollout.RolloutError(
                f"cluster {cluster}: no known-good image of {request['service']} to return to"
            )
        with kubernetes.client(cluster) as client:
            deployment = rollout.find_deployment(client, request["service"])
            rollout.set_image(client, deployment, row["to_image"], None)
            rollout.wait_rolled_out(
                client, deployment["metadata"]["namespace"], request["service"], timeout, poll, log
            )
        rollout.mark_target(engine, request["id"], cluster, status="rolled_back")
    except Exception as error_:
        status, error = "failed", str(error_)
        log(f"cluster {cluster}: rollback failed: {error}")
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            update(Rollback)
            .where(Rollback.id == row["id"])
            .values(status=status, finished_at=now, details=row["details"] | {"error": error})
        )
        if status == "done":
            connection.execute(
                update(DeploymentRequest)
                .where(DeploymentRequest.id == request["id"])
                .values(status="rolled_back", updated_at=now)
            )
        # Its `deployments` row (source timbel); done, the release becomes rolled_back.
        record_rollback(
            connection, request, f"rollback-{row['id']}", [cluster], row["to_image"],
            done=status == "done", started_at=row["created_at"], completed_at=now,
            triggered_by=trigger,
        )  # fmt: skip
    return row | {"status": status, "error": error}
