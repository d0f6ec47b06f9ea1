"""`run_grant_sensor`: launch each open run grant's job with its exact config, once.

Grants are written by whoever may take the action (the API after its policy check, the
health sensor); the run claims its grant before it changes anything (`jobs.guard`). The
run key is the grant id, so a grant launches at most once however often the sensor ticks.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.rollback import rollback
from timbel_dagster.jobs.tenants import delete_tenant_job, provision_tenant

GRANT_TAG = "timbel/grant"


def grant_requests(grants: list) -> list:
    """One RunRequest per open grant: its job, its exact config, run key = grant id."""
    return [
        dg.RunRequest(
            run_key=str(grant["id"]),
            job_name=grant["job"],
            run_config=grant["run_config"],
            tags={GRANT_TAG: str(grant["id"])},
        )
        for grant in grants
    ]


@dg.sensor(
    name="run_grant_sensor",
    jobs=[rollback, provision_tenant, delete_tenant_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch rollback, provision_tenant and delete_tenant for each unused, "
    "unexpired run grant (written by the API or the health sensor), once per grant.",
)
def run_grant_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    # lazy: deploy.grants loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.grants import open_grants

    with warehouse.engine().connect() as connection:
        grants = open_grants(connection)
    if not grants:
        return dg.SkipReason("no open run grants")
    context.log.info(f"launching {len(grants)} granted runs")
    return grant_requests(grants)
