"""The guard of the jobs that change clusters (`rollback`, `provision_tenant`,
`delete_tenant`): a run goes ahead only by claiming a run grant for its job and exact config
(`deploy.grants`), and then acts as the grant's actor. Anything else, such as a config typed
into the Launchpad, fails before it changes anything, and is audited as `run.refused`.
`deploy` and `rollback` also hold their service (`hold_service`): one at a time per service."""

# No `from __future__ import annotations`: kept like the job modules that import it.
import datetime as dt

import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.run_actor import RunActor, run_actor

# Run tags of the jobs that act on the world and must not be re-executed blindly by the
# daemon's run retries (`run_retries` in dagster.yaml, `dagsterDaemon.runRetries` in the Helm
# values): a guarded run's grant is single-use, so a retry would only be refused (and
# audited); a half-run `deploy` has moved its request on from `approved` and left clusters
# rolling, which a person settles; `trigger_build` would start a second build.
NO_RETRIES = {"dagster/max_retries": "0"}


def refuse(context: dg.OpExecutionContext, warehouse: WarehouseResource, job: str, reason: str):
    """Audit the refusal of this run (`run.refused`: run id, reason, where it came from) and
    return the dg.Failure to raise."""
    # lazy: deploy.grants loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.grants import refuse_run

    launched = run_actor(context.run.tags)
    refuse_run(warehouse.engine(), job, context.run_id, reason, launched.name, launched.details)
    context.log.error(f"{job} refused: {reason}")
    return dg.Failure(description=f"{job} refused: {reason}")


def claim_grant(context: dg.OpExecutionContext, warehouse: WarehouseResource, job: str):
    """The actor of the grant this run claims (once), as a verified RunActor, and the grant.

    Raises:
        dg.Failure: no grant for this job and config, or it expired or was used (audited).
    """
    # lazy: deploy.grants loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.grants import GrantRefusedError, claim

    try:
        grant = claim(warehouse.engine(), job, dict(context.run.run_config), context.run_id)
    except GrantRefusedError as error:
        raise refuse(context, warehouse, job, str(error)) from None
    context.log.info(f"run grant {grant['id']} of {grant['actor']} claimed")
    return RunActor(grant["actor"], verified=True), grant


def hold_service(
    context: dg.OpExecutionContext,
    warehouse: WarehouseResource,
    job: str,
    service: str,
    length: dt.timedelta,
    wait: float = 0.0,
    poll: float = 2.0,
) -> None:
    """Hold `service` for this run (deploy.leases) until `release_service` or `length`,
    waiting up to `wait` seconds for another run to release it.

    Raises:
        dg.Failure: another deploy or rollback run holds it (audited as `run.refused`).
    """
    # lazy: deploy.leases loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.leases import ServiceHeldError, claim

    try:
        lease = claim(
            warehouse.engine(), service, job, context.run_id, length,
            wait=wait, poll=poll, log=context.log.info,
        )  # fmt: skip
    except ServiceHeldError as error:
        raise refuse(context, warehouse, job, str(error)) from None
    context.log.info(f"service {service} held until {lease['expires_at']:%H:%M:%S} UTC at most")


def release_service(run_id: str, warehouse: WarehouseResource) -> None:
    """Release whatever service run `run_id` holds."""
    # lazy: deploy.leases loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.leases import release

    release(warehouse.engine(), run_id)


@dg.failure_hook(required_resource_keys={"warehouse"})
def release_service_on_failure(context: dg.HookContext) -> None:
    """On a step after which nothing of the run changes the service (a step after a failed
    one does not run, so the step that releases it on success never would): it is free."""
    release_service(context.run_id, context.resources.warehouse)
