"""`run_grant_sensor`: launch each open run grant's job with its exact config, once.

Grants are written by whoever may take the action (the API after its policy check, the
health sensor); the run claims its grant before it changes anything (`jobs.guard`). The
run key is the grant id, so a grant launches at most once however often the sensor ticks.
A rollback run also carries the service it rolls back (`timbel/rollback-service`), which
the run queue's tag concurrency limit keys on: at most one rollback per service runs at a
time (deploy/helm/values.yaml, dagster.yaml.example).
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.rollback import rollback
from timbel_dagster.jobs.tenants import delete_tenant_job, provision_tenant

GRANT_TAG = "timbel/grant"
# The run queue allows one run per value of this tag at a time (tag_concurrency_limits).
ROLLBACK_SERVICE_TAG = "timbel/rollback-service"


def grant_requests(grants: list, services: dict[str, str] | None = None) -> list:
    """One RunRequest per open grant: its job, its exact config, run key = grant id; a
    rollback's service (`services`, by grant id) as its ROLLBACK_SERVICE_TAG."""
    services = services or {}
    requests = []
    for grant in grants:
        ident = str(grant["id"])
        tags = {GRANT_TAG: ident}
        if ident in services:
            tags[ROLLBACK_SERVICE_TAG] = services[ident]
        requests.append(
            dg.RunRequest(
                run_key=ident, job_name=grant["job"], run_config=grant["run_config"], tags=tags
            )
        )
    return requests


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
    from timbel_dagster.deploy.grants import open_grants, rollback_services

    with warehouse.engine().connect() as connection:
        grants = open_grants(connection)
        services = rollback_services(connection, grants) if grants else {}
    if not grants:
        return dg.SkipReason("no open run grants")
    context.log.info(f"launching {len(grants)} granted runs")
    return grant_requests(grants, services)
