"""Free a service whose `deploy` or `rollback` run ended without releasing it.

The jobs release their service lease (deploy.leases) when they end normally or when their
planning step fails, but not when a cluster's step fails on something other than a rollout
error (the other clusters may still be rolling out then) nor when the run is terminated.
Once Dagster says the whole run has failed or was canceled, no step of it changes the service
any more: these sensors release its lease at once instead of leaving it to expire.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.deploy import deploy
from timbel_dagster.jobs.rollback import rollback


def _release(context: dg.RunStatusSensorContext, warehouse: WarehouseResource) -> None:
    # lazy: deploy.leases loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.leases import release

    run = context.dagster_run
    if released := release(warehouse.engine(), run.run_id):
        context.log.info(f"released {released} service lease(s) of {run.job_name} {run.run_id}")


@dg.run_failure_sensor(
    name="service_lease_release_on_failure",
    monitored_jobs=[deploy, rollback],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Release the service a failed deploy or rollback run still holds.",
)
def release_failed_run_leases(context: dg.RunFailureSensorContext, warehouse: WarehouseResource):
    _release(context, warehouse)


@dg.run_status_sensor(
    name="service_lease_release_on_cancel",
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[deploy, rollback],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Release the service a terminated deploy or rollback run still holds.",
)
def release_canceled_run_leases(context: dg.RunStatusSensorContext, warehouse: WarehouseResource):
    _release(context, warehouse)
