"""Asking for a guarded run: the rollback, tenant and tenant-deletion grants the API writes
(`POST /rollbacks`, `POST /tenants`, `DELETE /tenants/{name}`). Nothing runs here: each
function checks what it can now, then writes a run grant for the job's exact config (audited
as `run.grant` with the real actor), which `run_grant_sensor` launches and the run claims.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from timbel_dagster.deploy import rollback_target
from timbel_dagster.deploy.grants import grant_run
from timbel_dagster.deploy.lookup import RequestError, find
from timbel_dagster.tenants import store
from timbel_dagster.tenants.manifests import tenant_spec
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R
from timbel_dagster.warehouse.schema.deploy import RolloutTarget as T

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


class NotFoundError(LookupError):
    """What the grant would act on does not exist (the API answers 404)."""


def _rolled_out(connection: Connection, service: str, cluster: str) -> dict[str, Any]:
    """The newest request of `service` that rolled out to `cluster`."""
    row = connection.execute(
        select(R.__table__)
        .join(T, T.request_id == R.id)
        .where(R.service == service, T.cluster == cluster, T.status == "succeeded")
        .order_by(R.number.desc())
        .limit(1)
    ).mappings().first()  # fmt: skip
    if row is None:
        raise NotFoundError(f"no deployment of {service} rolled out to {cluster}")
    return dict(row)


def grant_rollback(
    engine: Engine,
    actor: str,
    service: str,
    cluster: str,
    reason: str,
    *,
    request: int | None = None,
    to_revision: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Grant a `rollback` run of `service` in `cluster`: back to its last known-good image,
    or to the past deployment `to_revision` names (`deploy.rollback_target`), which the
    grant carries as `to_request` and `to_image` and the job checks again.

    Args:
        request: the deployment request to roll back; default the newest one of the service
            that rolled out to the cluster.
        to_revision: a request number (`41`, `#41`) or an image, tag or digest of a past
            deployment of the service that succeeded in the cluster.

    Raises:
        NotFoundError: no such request, or none of the service rolled out to the cluster.
        RevisionNotFoundError (a LookupError): `to_revision` is a request number that does
            not exist.
        ValueError: the request is of another service; RevisionRefusedError: `to_revision`
            names no deployment to go back to (the message starts with `to_revision`).
    """
    with engine.begin() as connection:
        if request is None:
            found = _rolled_out(connection, service, cluster)
        else:
            try:
                found = find(connection, str(request))
            except RequestError as error:
                raise NotFoundError(str(error)) from None
            if found["service"] != service:
                raise ValueError(f"request #{request} is of {found['service']}, not {service}")
        config = {"request": found["number"], "cluster": cluster, "reason": reason,
                  "trigger": actor, "dry_run": dry_run}  # fmt: skip
        if to_revision is not None:
            target = rollback_target.resolve(connection, found, cluster, to_revision)
            # Only when chosen: a config without them hashes as grants always have.
            config |= {"to_request": target["request"], "to_image": target["image"]}
        run_config = {"ops": {"roll_back_deployment": {"config": config}}}
        grant, _ = grant_run(
            connection, "rollback", run_config, actor, request_number=found["number"]
        )
    return _granted(grant, "rollback", run_config, found["number"])


def grant_tenant(engine: Engine, actor: str, config: dict[str, Any]) -> dict[str, Any]:
    """Grant a `provision_tenant` run with `config` (the job's TenantConfig fields), whose
    name, quantities, users and role are checked first.

    Raises:
        ValueError: the settings are not a valid tenant (TenantSpecError), or a user is
            unknown.
    """
    tenant_spec(
        config["name"], config["cpu"], config["memory"], config["users"],
        pods=config["pods"], role=config["role"], ingress_namespace=config["ingress_namespace"],
    )  # fmt: skip
    if not (config["clusters"] or config["groups"]):
        raise ValueError("name the clusters or the groups of clusters the tenant is on")
    run_config = {"ops": {"provision": {"config": config}}}
    with engine.begin() as connection:
        store.check_users(connection, config["users"])
        grant, _ = grant_run(connection, "provision_tenant", run_config, actor)
    return _granted(grant, "provision_tenant", run_config, None)


def grant_tenant_deletion(engine: Engine, actor: str, name: str) -> dict[str, Any]:
    """Grant a `delete_tenant` run for tenant `name`.

    Raises:
        NotFoundError: no provisioned tenant `name`.
    """
    run_config = {"ops": {"remove_tenant": {"config": {"name": name}}}}
    with engine.begin() as connection:
        row = store.get_tenant(connection, name)
        if row is None or row.status != "provisioned":
            raise NotFoundError(f"no provisioned tenant {name!r}")
        grant, _ = grant_run(connection, "delete_tenant", run_config, actor)
    return _granted(grant, "delete_tenant", run_config, None)


def _granted(
    grant: uuid.UUID, job: str, run_config: dict[str, Any], request: int | None
) -> dict[str, Any]:
    return {"grant": str(grant), "job": job, "run_config": run_config, "request": request}
