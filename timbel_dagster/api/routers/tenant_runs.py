"""POST /api/v1/tenants and DELETE /api/v1/tenants/{name}: ask for a tenant to be provisioned
or deleted. The API never runs a job: it writes a run grant, and `run_grant_sensor`
launches `provision_tenant` or `delete_tenant` with exactly that config."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ApiError, problems
from timbel_dagster.api.schemas.grants import RunGrantOut, TenantIn
from timbel_dagster.deploy.launch import NotFoundError, grant_tenant, grant_tenant_deletion
from timbel_dagster.identity.principal import Principal
from timbel_dagster.tenants.store import UnknownUsersError

router = APIRouter(tags=["tenants"])


@router.post(
    "/tenants",
    status_code=202,
    summary="Ask for a tenant to be provisioned (answered with its run grant)",
    response_model=RunGrantOut,
    responses=problems(400, 401, 403, 422),
)
def create_tenant(
    body: TenantIn,
    who: Annotated[Principal, Depends(require("tenants.create"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
) -> RunGrantOut:
    """Operations (or admin) only. The name, quantities, users and role are checked now (422
    naming what is wrong); then a run grant for `provision_tenant` with exactly this config
    is written, acting as the caller (audited as `run.grant`), and `run_grant_sensor`
    launches it. What `timbel tenant create` does, run by the daemon."""
    try:
        granted = grant_tenant(warehouse, who.user, body.model_dump())
    except (ValueError, UnknownUsersError) as error:
        raise ApiError(422, str(error), kind="validation") from None
    return RunGrantOut(**granted)


@router.delete(
    "/tenants/{name}",
    status_code=202,
    summary="Ask for a tenant to be deleted (answered with its run grant)",
    response_model=RunGrantOut,
    responses=problems(401, 403, 404, 422),
)
def delete_tenant(
    name: Annotated[str, Path(min_length=1, max_length=63)],
    who: Annotated[Principal, Depends(require("tenants.delete"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
) -> RunGrantOut:
    """Operations (or admin) only. A run grant for `delete_tenant` (its namespace and
    everything in it, on each of its clusters), acting as the caller; 404 when there is no
    provisioned tenant of that name."""
    try:
        granted = grant_tenant_deletion(warehouse, who.user, name)
    except NotFoundError as error:
        raise ApiError(404, str(error), kind="not-found") from None
    return RunGrantOut(**granted)
