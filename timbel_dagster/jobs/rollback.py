"""The `rollback` job: one service in one cluster back to its last known-good image, or to
the past deployment its grant chose (`to_request`/`to_image`, checked again here), exactly
once per deployment and image however many triggers fire."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy.rollback import roll_back
from timbel_dagster.jobs.guard import (
    NO_RETRIES,
    claim_grant,
    hold_service,
    refuse,
    release_service,
)
from timbel_dagster.resources.kubernetes import KubernetesResource


class RollbackConfig(dg.Config):
    request: int  # the deployment request whose image is rolled back
    cluster: str
    reason: str
    # Who or what asked, for the record only: the run acts as the actor of its run grant.
    trigger: str = "manual"
    # A chosen revision (`deploy.rollback_target`), both or neither: the past deployment to
    # go back to and its image. Neither: the last known-good image.
    to_request: int | None = None
    to_image: str | None = None
    dry_run: bool = False
    timeout_seconds: float = 600.0
    poll_seconds: float = 2.0
    # While a deploy (or another rollback) of the service runs, wait this long for it to end
    # before refusing: a refused rollback has used its grant, and an automatic one would be
    # lost. Default: one rollout's default timeout (a deploy's wave) and a margin.
    wait_for_service_seconds: float = 900.0


@dg.op
def roll_back_deployment(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
    notifier: NotifierResource,
) -> dict:
    # lazy: deploy.lookup loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy import rollback_target
    from timbel_dagster.deploy.leases import lease_length
    from timbel_dagster.deploy.lookup import find
    from timbel_dagster.notify.messages import Message

    if not config.reason.strip():
        raise refuse(context, warehouse, "rollback", "a rollback needs a reason")
    # Only with a run grant for this exact config, acting as whoever was granted it (an
    # operator through the API or the timbel command, or the health sensor).
    launched, grant = claim_grant(context, warehouse, "rollback")
    trigger = launched.name
    engine = warehouse.engine()
    chosen = config.to_request is not None or config.to_image is not None
    refused = None
    with engine.connect() as connection:
        request = find(connection, str(config.request))
        if chosen:  # checked when granted; the deployment may have been rolled back since
            try:
                rollback_target.recheck(
                    connection, request, config.cluster, config.to_request, config.to_image
                )
            except (LookupError, ValueError) as error:
                refused = str(error)
    if refused is not None:  # audited once this connection is closed (SQLite's one writer)
        raise refuse(context, warehouse, "rollback", refused)
    # Not while a deploy (or another rollback) of the service runs, whoever launched it.
    length = lease_length(config.timeout_seconds)
    hold_service(
        context, warehouse, "rollback", request["service"], length,
        wait=config.wait_for_service_seconds, poll=config.poll_seconds,
    )  # fmt: skip
    try:
        target = {"request": config.to_request, "image": config.to_image} if chosen else None
        row = roll_back(
            engine, kubernetes, request, config.cluster, trigger, config.reason,
            config.dry_run, config.timeout_seconds, config.poll_seconds, context.log.info,
            audit_details={"grant": str(grant["id"]), "run": context.run_id}, target=target,
        )  # fmt: skip
        if row is None:
            return {"status": "already rolled back"}
        try:
            notifier.dispatcher(context.log).send(
                Message(
                    event="deployment_done",
                    key=f"rollback:{row['id']}",
                    title=f"{'[dry run] ' if config.dry_run else ''}{request['service']} "
                    f"rolled back in {config.cluster}: {row['from_image']} -> {row['to_image']}",
                    severity="high",
                    context={"reason": config.reason, "trigger": trigger,
                             "status": row["status"]},
                )
            )  # fmt: skip
        except Exception as error:  # the rollback stands; a notice must not undo it
            context.log.warning(f"rollback notice not sent: {error}")
        if row["status"] == "failed":
            raise dg.Failure(description=f"rollback failed: {row.get('error')}")
        return {k: str(v) for k, v in row.items()}
    finally:
        release_service(context.run_id, warehouse)


@dg.job(
    description="Roll a service in one cluster back to its last known-good image, or to a "
    "chosen past deployment, exactly once per deployment and image (dry_run records what it "
    "would do).",
    tags={"timbel/kind": "rollback", **NO_RETRIES},
)
def rollback():
    roll_back_deployment()
