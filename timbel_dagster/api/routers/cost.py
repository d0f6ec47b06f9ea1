"""GET /api/v1/cost: `timbel tenant report --json`, limited to the caller's tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.guard import check, invalid
from timbel_dagster.api.schemas.cost import CostReport, TenantCost
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants
from timbel_dagster.tenants.report import month_range, monthly_report

router = APIRouter(tags=["cost"])


@router.get(
    "/cost",
    summary="Monthly usage and cost by tenant",
    response_model=CostReport,
    responses=problems(*ERRORS_READ),
)
def cost(
    request: Request,
    who: Annotated[Principal, Depends(require("cost.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    month: Annotated[
        str | None, Query(description="YYYY-MM (UTC); default: every month stored.")
    ] = None,
    tenant: Annotated[str | None, Query(description="One tenant.")] = None,
    source: Annotated[str | None, Query(description="Only rows of this source.")] = None,
) -> CostReport:
    """What the `cluster/cost_allocation` asset stored, summed per month, tenant and source.
    A team lead sees their tenants' rows (asking for another tenant is refused); operations
    and admin see all."""
    if month is not None:
        try:
            month_range(month)
        except ValueError as error:
            raise invalid(("query", "month"), str(error)) from None
    if tenant is not None:
        check(request, warehouse, who, "cost.read", Target(tenant=tenant))
    with warehouse.connect() as connection:
        rows = monthly_report(connection, month, source, tenant, visible_tenants(who, "cost.read"))
    return CostReport(items=[TenantCost(**row) for row in rows])
