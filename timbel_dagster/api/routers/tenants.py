"""GET /api/v1/tenants and /tenants/{name}: what `timbel tenant list` shows, limited to the
caller's tenants unless their role sees every tenant. Creating and deleting tenants are run
grants, elsewhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.guard import check, not_found, sees
from timbel_dagster.api.schemas.tenants import TenantList, TenantOut
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal
from timbel_dagster.tenants import store

ACTION = "tenants.read"
router = APIRouter(tags=["tenants"])


def _out(row: store.TenantRow) -> TenantOut:
    return TenantOut(**{k: v for k, v in row.as_dict().items() if k != "id"})


@router.get(
    "/tenants",
    summary="List the tenants the caller may see",
    response_model=TenantList,
    responses=problems(*ERRORS_READ),
)
def tenants(
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    include_deleted: Annotated[
        bool, Query(alias="all", description="Include deleted tenants.")
    ] = False,
) -> TenantList:
    """Tenants with their quota, users and clusters, by name. Operations and admin see every
    tenant; anyone else sees the tenants they are a member of."""
    with warehouse.connect() as connection:
        rows = store.list_tenants(connection, include_deleted)
    return TenantList(items=[_out(r) for r in rows if sees(who, ACTION, r.name)])


@router.get(
    "/tenants/{name}",
    summary="One tenant: quota, users and clusters",
    response_model=TenantOut,
    responses=problems(*ERRORS_READ, 404),
)
def tenant(
    request: Request,
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Annotated[str, Path(max_length=63, description="The tenant's name.")],
) -> TenantOut:
    """A tenant, deleted ones too. 403 for a tenant the caller is not a member of (unless
    operations or admin), 404 for a name no tenant has."""
    with warehouse.connect() as connection:
        row = store.get_tenant(connection, name)
    if row is None:
        raise not_found(f"no tenant named {name!r}")
    check(request, warehouse, who, ACTION, Target(tenant=row.name))
    return _out(row)
