"""The `deploy` job: an approved request rolled out to every cluster of its group at once.

plan_rollout fans out one `rollout_cluster` step per cluster (Dagster dynamic outputs; the
executor's `max_concurrent` bounds how many run at a time), each keeps its cluster's status
row current and waits for the rollout as `kubectl rollout status` does; finish_rollout then
applies the strategy when some clusters failed: roll back all, only the failed ones, or halt.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt
import re

import dagster as dg

from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy import rollout
from timbel_dagster.deploy.finish import announce, settle
from timbel_dagster.deploy.rollout import STRATEGIES
from timbel_dagster.jobs.guard import (
    NO_RETRIES,
    hold_service,
    refuse,
    release_service,
    release_service_on_failure,
)
from timbel_dagster.jobs.run_actor import UI_ACTOR, RunActor, note_unverified, run_actor
from timbel_dagster.resources.errors import SourceError
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.warehouse.audit.chain import append_event


class DeployConfig(dg.Config):
    request: int  # the request's number; it must be approved
    # When given, they must be the request's: a config cannot borrow another's approval.
    service: str | None = None
    image: str | None = None
    strategy: str = "rollback_failed"  # rollback_all | rollback_failed | halt
    container: str | None = None  # default: the container named like the service
    timeout_seconds: float = 600.0
    poll_seconds: float = 2.0
    # Only a claim when the run was launched from the UI (kept in the audit details as
    # `unverified_claim`); plan_rollout replaces it with the run's actor for the later steps.
    actor: str = "dagster"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _refusal(connection, config: DeployConfig) -> str | None:
    """Why this run may not roll out (None: it may): the config must name an approved
    request, and its service and image when it names them. The approval is the run's leave;
    rolling out moves the request on, so the same request never rolls out twice."""
    # lazy: deploy.lookup loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.lookup import RequestError, find

    try:
        request = find(connection, str(config.request))
    except RequestError as error:
        return str(error)
    if request["status"] != "approved":
        return (
            f"request #{request['number']} is {request['status']}: only an approved request is "
            "rolled out"
        )
    for field in ("service", "image"):
        named = getattr(config, field)
        if named is not None and named != request[field]:
            return (
                f"the config names {field} {named!r}, but request #{request['number']} was "
                f"approved for {request[field]!r}"
            )
    return None


def _hold(context, warehouse: WarehouseResource, request: dict, config: DeployConfig,
          clusters: int) -> None:  # fmt: skip
    """Hold the request's service for this run, for as long as rolling out to `clusters`
    clusters (and rolling them back) may take (deploy.leases)."""
    # lazy: deploy.leases loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.leases import lease_length

    length = lease_length(config.timeout_seconds, clusters, ROLLOUT_PARALLEL)
    hold_service(context, warehouse, "deploy", request["service"], length)


def _who(actor: str) -> str | None:
    """The person behind a run, for `deployments.triggered_by` (None: the requester)."""
    return None if actor == "dagster" else actor


@dg.op(out=dg.DynamicOut(dict))
def plan_rollout(
    context: dg.OpExecutionContext,
    config: DeployConfig,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
):
    """Check the request is approved, pick the group's clusters, record them as pending."""
    from sqlalchemy import insert, update

    # lazy: deploy.deployment_rows loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.deployment_rows import record_release
    from timbel_dagster.deploy.lookup import find
    from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, RolloutTarget

    launched = run_actor(context.run.tags)
    claim = config.actor if config.actor != "dagster" else launched.claim
    if not launched.verified and claim is not None:
        launched = RunActor(UI_ACTOR, verified=False, claim=claim[:256])
    note_unverified(context.log, launched)
    config = config.model_copy(update={"actor": launched.name})
    if config.strategy not in STRATEGIES:
        raise ValueError(
            f"strategy must be one of {', '.join(STRATEGIES)}, not {config.strategy!r}"
        )
    with warehouse.engine().connect() as connection:
        refusal = _refusal(connection, config)
        request = None if refusal else find(connection, str(config.request))
    if refusal:
        raise refuse(context, warehouse, "deploy", refusal)
    group = request["environment_group"]
    clusters = [c.name for c in kubernetes.clusters() if c.group == group]
    if not clusters:
        raise ValueError(f"no cluster of group {group} in the clusters file")
    # No rollback of the service (nor another deploy) until this run has settled: released
    # by finish_rollout, or by the failure hook when this step fails.
    _hold(context, warehouse, request, config, len(clusters))
    with warehouse.begin() as connection:
        request = find(connection, str(config.request))
        if request["status"] != "approved":  # a run that raced this one took it first
            raise ValueError(f"request #{request['number']} is {request['status']} already")
        now = _now()
        connection.execute(
            update(DeploymentRequest)
            .where(DeploymentRequest.id == request["id"])
            .values(status="deploying", updated_at=now)
        )
        # The release's `deployments` row (source timbel), in the same transaction.
        record_release(connection, request, "deploying", clusters, now, _who(config.actor))
        connection.execute(
            insert(RolloutTarget),
            [{"request_id": request["id"], "cluster": c, "status": "pending"} for c in clusters],
        )
        append_event(
            connection,
            actor=config.actor,
            action="deploy.start",
            target=f"request #{request['number']}",
            details={
                "clusters": clusters,
                "image": request["image"],
                "run": context.run_id,
                **launched.details,
            },
        )
    context.log.info(
        f"rolling {request['service']} {request['image']} out to {len(clusters)} clusters: "
        f"{', '.join(clusters)}"
    )
    # The run's config travels with each cluster: the later steps need no config of their own.
    settings = config.model_dump()
    for cluster in clusters:
        yield dg.DynamicOutput(
            {"cluster": cluster, "config": settings},
            mapping_key=re.sub(r"[^A-Za-z0-9_]", "_", cluster),
        )


@dg.op
def rollout_cluster(
    context: dg.OpExecutionContext,
    target: dict,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
) -> dict:
    """Set the new image on one cluster and wait for the rollout; never raises for a failed
    rollout (the strategy decides what happens), only reports it."""
    config, cluster = DeployConfig(**target["config"]), target["cluster"]
    # lazy: deploy.lookup loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.lookup import find

    engine = warehouse.engine()
    with engine.connect() as connection:
        request = find(connection, str(config.request))
    # The service must be this run's: a no-op after plan_rollout held it, but a re-execution
    # from failure (a new run that skips plan_rollout) holds it here, or is refused while a
    # rollback or another deploy of the service runs.
    group = request["environment_group"]
    _hold(context, warehouse, request, config, sum(c.group == group for c in kubernetes.clusters()))
    result = {
        "cluster": cluster,
        "ok": False,
        "namespace": None,
        "previous_image": None,
        "config": target["config"],
    }
    try:
        with kubernetes.client(cluster) as client:
            deployment = rollout.find_deployment(client, request["service"])
            namespace = deployment["metadata"]["namespace"]
            result["namespace"] = namespace
            _, previous = rollout.container_image(deployment, config.container)
            rollout.mark_target(
                engine,
                request["id"],
                cluster,
                status="rolling",
                namespace=namespace,
                previous_image=previous,
                previous_revision=rollout.revision_of(deployment),
                started_at=_now(),
            )
            result["previous_image"] = rollout.set_image(
                client, deployment, request["image"], config.container
            )
            _, raw = rollout.wait_rolled_out(
                client,
                namespace,
                request["service"],
                config.timeout_seconds,
                config.poll_seconds,
                context.log.info,
            )
        result["ok"] = True
        rollout.mark_target(
            engine,
            request["id"],
            cluster,
            status="succeeded",
            revision=rollout.revision_of(raw),
            message="rolled out",
            finished_at=_now(),
        )
    except (rollout.RolloutError, SourceError) as error:
        result["error"] = str(error)
        context.log.error(str(error))
        rollout.mark_target(
            engine, request["id"], cluster, status="failed", message=str(error)[:2000],
            finished_at=_now(),
        )  # fmt: skip
    return result


@dg.op
def finish_rollout(
    context: dg.OpExecutionContext,
    results: list,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
    notifier: NotifierResource,
) -> dict:
    """Settle the request: deployed, or apply the strategy to the clusters that failed."""

    config = DeployConfig(**results[0]["config"])
    try:
        outcome = settle(
            warehouse.engine(), kubernetes, config, sorted(results, key=lambda r: r["cluster"]),
            context.log.info,
        )  # fmt: skip
    finally:  # settled (or failed to): the service is free for the next deploy or rollback
        release_service(context.run_id, warehouse)
    try:
        announce(notifier.dispatcher(context.log), outcome)
    except Exception as error:  # the rollout is settled; a notice must not undo that
        context.log.warning(f"deployment notice not sent: {error}")
    if outcome["status"] != "deployed":
        raise dg.Failure(
            description=f"request #{config.request}: {outcome['status']} "
            f"({', '.join(outcome['failed'])} failed; strategy {config.strategy})",
            metadata={"outcome": dg.MetadataValue.json(outcome)},
        )
    return outcome


# Its own executor: the code location's (max_concurrent 2, for CPU-bound steps) would make a
# third cluster wait for the first; rollout steps mostly wait on the API server.
ROLLOUT_PARALLEL = 8
ROLLOUT_EXECUTOR = dg.multiprocess_executor.configured(
    {
        "max_concurrent": ROLLOUT_PARALLEL,
        "start_method": {"forkserver": {"preload_modules": ["timbel_dagster.definitions"]}},
    },
    name="rollout_executor",
)


@dg.job(
    description="Roll an approved deployment request out to every cluster of its group in "
    "parallel (at most 8 at a time), then settle it (strategy on failure: rollback_all, "
    "rollback_failed or halt).",
    tags={"timbel/kind": "deploy", **NO_RETRIES},
    executor_def=ROLLOUT_EXECUTOR,
)
def deploy():
    # The service is held from plan_rollout to finish_rollout: released there, or by the hook
    # when planning fails. Not on a failed cluster step: the others may still be rolling out
    # (finish_rollout then never runs, and the lease ends at its bound).
    planned = plan_rollout.with_hooks({release_service_on_failure})()
    finish_rollout(planned.map(rollout_cluster).collect())
