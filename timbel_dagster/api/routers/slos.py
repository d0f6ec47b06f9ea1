"""GET /api/v1/slos: `timbel slo status --json`, limited to the caller's tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.guard import check
from timbel_dagster.api.schemas.slos import SloList, SloStatusOut
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants
from timbel_dagster.slo.status import as_dict, latest
from timbel_dagster.warehouse.read.scope import tenant_of_service

router = APIRouter(tags=["slos"])


@router.get(
    "/slos",
    summary="The latest status of each SLO: SLI, error budget, burn rates",
    response_model=SloList,
    responses=problems(*ERRORS_READ),
)
def slos(
    request: Request,
    who: Annotated[Principal, Depends(require("slos.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    service: Annotated[str | None, Query(max_length=128, description="One service.")] = None,
) -> SloList:
    """What `slo/slo_status` stored last for each SLO of TIMBEL_SLO_FILE, as `timbel slo
    status --json` prints it: the SLOs of services in the caller's tenants and in none
    (operations and admin: all); asking for another tenant's service is refused."""
    if service:
        with warehouse.connect() as connection:
            tenant = tenant_of_service(connection, service)
        check(request, warehouse, who, "slos.read", Target(tenant=tenant))
    with warehouse.connect() as connection:
        found = latest(connection, service=service, tenants=visible_tenants(who, "slos.read"))
    return SloList(items=[SloStatusOut(**as_dict(s)) for s in found])
