"""Settling a rollout: the request's final status, the strategy for clusters that failed,
and the rollbacks it makes. Plain functions the deploy job calls."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from timbel_dagster.deploy import rollout
from timbel_dagster.warehouse.audit.chain import append_event


def settle(
    engine: Any, kubernetes: Any, config: Any, results: list[dict], log: Callable[[str], None]
) -> dict[str, Any]:
    """Apply the strategy and record the outcome (audited) in one transaction at the end."""
    from sqlalchemy import insert, update

    # lazy: deploy.deployment_rows loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.deployment_rows import (
        record_release,
        record_rollback,
        release_external_id,
    )
    from timbel_dagster.deploy.lookup import find
    from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, Rollback

    with engine.connect() as connection:
        request = find(connection, str(config.request))
    failed = [r["cluster"] for r in results if not r["ok"]]
    failed_at = dt.datetime.now(dt.UTC)  # every cluster has reported: the failure is known
    undo: list[dict] = []
    if failed and config.strategy == "rollback_all":
        undo = [r for r in results if r["previous_image"]]
    elif failed and config.strategy == "rollback_failed":
        undo = [r for r in results if not r["ok"] and r["previous_image"]]
    rollbacks = []
    for result in undo:
        rollbacks.append(_roll_back(kubernetes, engine, request, config, result, log))
    for result in results:
        if not result["ok"] and config.strategy == "halt":
            rollout.mark_target(engine, request["id"], result["cluster"], status="halted")
    status = (
        "deployed" if not failed else ("failed" if config.strategy == "halt" else "rolled_back")
    )
    if failed and not any(r["status"] == "done" for r in rollbacks) and config.strategy != "halt":
        status = "failed"
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            update(DeploymentRequest)
            .where(DeploymentRequest.id == request["id"])
            .values(status=status, updated_at=now)
        )
        if rollbacks:
            connection.execute(insert(Rollback), rollbacks)
        # `deployments` rows (source timbel): the release, and the strategy's rollbacks as one.
        who = None if config.actor == "dagster" else config.actor
        clusters = [r["cluster"] for r in results]
        record_release(connection, request, status, clusters, now, who, failed_at=failed_at)
        if rollbacks:
            record_rollback(
                connection,
                request,
                f"{release_external_id(request)}-rollback",
                [r["cluster"] for r in rollbacks],
                _single({r["to_image"] for r in rollbacks}),
                done=all(r["status"] == "done" for r in rollbacks),
                started_at=min(r["created_at"] for r in rollbacks),
                completed_at=max(r["finished_at"] for r in rollbacks),
                triggered_by=f"deploy strategy {config.strategy}",
            )
        append_event(
            connection,
            actor=config.actor,
            action="deploy.finish",
            target=f"request #{request['number']}",
            details={
                "status": status,
                "failed": failed,
                "strategy": config.strategy,
                "rolled_back": [r["cluster"] for r in rollbacks],
            },
        )
    return {
        "request": request["number"],
        "service": request["service"],
        "image": request["image"],
        "group": request["environment_group"],
        "status": status,
        "clusters": [r["cluster"] for r in results],
        "failed": failed,
        "rolled_back": [r["cluster"] for r in rollbacks if r["status"] == "done"],
    }


def _single(values: set[Any]) -> Any:
    return next(iter(values)) if len(values) == 1 else None


def _roll_back(kubernetes, engine, request, config, result, log) -> dict[str, Any]:
    """Put the image the cluster had before back, and wait for it."""
    cluster, namespace = result["cluster"], result["namespace"]
    row = {
        "id": uuid.uuid4(),
        "idempotency_key": f"rollout:{request['id']}:{cluster}",
        "service": request["service"],
        "cluster": cluster,
        "namespace": namespace,
        "from_image": request["image"],
        "from_revision": None,
        "to_image": result["previous_image"],
        "to_revision": None,
        "trigger": f"deploy strategy {config.strategy}",
        "reason": result.get("error") or "another cluster failed",
        "dry_run": False,
        "details": {"request": request["number"]},
        "created_at": dt.datetime.now(dt.UTC),
    }
    try:
        with kubernetes.client(cluster) as client:
            deployment = rollout.find_deployment(client, request["service"])
            rollout.set_image(client, deployment, result["previous_image"], config.container)
            rollout.wait_rolled_out(
                client, namespace, request["service"], config.timeout_seconds,
                config.poll_seconds, log,
            )  # fmt: skip
        rollout.mark_target(engine, request["id"], cluster, status="rolled_back")
        log(f"cluster {cluster}: rolled back to {result['previous_image']}")
        return row | {"status": "done", "finished_at": dt.datetime.now(dt.UTC)}
    except Exception as error:
        log(f"cluster {cluster}: rollback failed: {error}")
        return row | {"status": "failed", "finished_at": dt.datetime.now(dt.UTC),
                      "details": {"request": request["number"], "error": str(error)}}  # fmt: skip


def announce(dispatcher: Any, outcome: dict[str, Any]) -> None:
    # lazy: notify.messages loads SQLAlchemy; the code location loads without it
    from timbel_dagster.notify.messages import Message

    ok = outcome["status"] == "deployed"
    dispatcher.send(
        Message(
            event="deployment_done",
            key=f"deploy:{outcome['request']}:{outcome['status']}",
            title=f"#{outcome['request']} {outcome['service']} {outcome['image']} to "
            f"{outcome['group']}: {outcome['status']}",
            severity="info" if ok else "high",
            context={
                "clusters": ", ".join(outcome["clusters"]),
                "failed": ", ".join(outcome["failed"]) or "-",
                "rolled back": ", ".join(outcome["rolled_back"]) or "-",
            },
        )
    )
