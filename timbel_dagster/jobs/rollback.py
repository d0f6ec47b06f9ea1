"""The `rollback` job: one service in one cluster back to its last known-good image,
exactly once per deployment and image however many triggers fire."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.resources.notifier import NotifierResource
from timbel_dagster.resources.warehouse import WarehouseResource


class RollbackConfig(dg.Config):
    request: int  # the deployment request whose image is rolled back
    cluster: str
    reason: str
    trigger: str = "manual"
    dry_run: bool = False
    timeout_seconds: float = 600.0
    poll_seconds: float = 2.0


@dg.op
def roll_back_deployment(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
    notifier: NotifierResource,
) -> dict:
    from timbel_dagster.deploy.lookup import find
    from timbel_dagster.deploy.rollback import roll_back
    from timbel_dagster.notify.messages import Message

    if not config.reason.strip():
        raise ValueError("a rollback needs a reason")
    engine = warehouse.engine()
    with engine.connect() as connection:
        request = find(connection, str(config.request))
    row = roll_back(
        engine, kubernetes, request, config.cluster, config.trigger, config.reason,
        config.dry_run, config.timeout_seconds, config.poll_seconds, context.log.info,
    )  # fmt: skip
    if row is None:
        return {"status": "already rolled back"}
    try:
        notifier.dispatcher(context.log).send(
            Message(
                event="deployment_done",
                key=f"rollback:{row['id']}",
                title=f"{'[dry run] ' if config.dry_run else ''}{request['service']} rolled back "
                f"in {config.cluster}: {row['from_image']} -> {row['to_image']}",
                severity="high",
                context={"reason": config.reason, "trigger": config.trigger,
                         "status": row["status"]},
            )
        )  # fmt: skip
    except Exception as error:  # the rollback stands; a notice must not undo it
        context.log.warning(f"rollback notice not sent: {error}")
    if row["status"] == "failed":
        raise dg.Failure(description=f"rollback failed: {row.get('error')}")
    return {k: str(v) for k, v in row.items()}


@dg.job(
    description="Roll a service in one cluster back to its last known-good image, exactly "
    "once per deployment and image (dry_run records what it would do).",
    tags={"timbel/kind": "rollback"},
)
def rollback():
    roll_back_deployment()
