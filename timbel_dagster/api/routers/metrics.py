"""GET /api/v1/metrics/dora: `timbel dora --json`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.guard import check, invalid
from timbel_dagster.api.schemas.metrics import DoraReport
from timbel_dagster.deploy.dora import ORGANISATION
from timbel_dagster.deploy.dora_report import dora_report
from timbel_dagster.deploy.lookup import RequestError
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal
from timbel_dagster.warehouse.read.scope import tenant_of_service

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics/dora",
    summary="DORA metrics in prod, per week and over the last weeks",
    response_model=DoraReport,
    responses=problems(*ERRORS_READ),
)
def dora(
    request: Request,
    who: Annotated[Principal, Depends(require("metrics.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    service: Annotated[
        str | None, Query(description="One service (default: the whole organisation).")
    ] = None,
    weeks: Annotated[
        int, Query(ge=1, le=520, description="Weeks up to the newest deployment.")
    ] = 4,
) -> DoraReport:
    """Deployment frequency, lead time for changes, change failure rate, time to restore and
    rework rate, as `timbel dora --json` prints them. The organisation's figures are open to
    every role that may read metrics; one service's need its tenant (operations: all)."""
    if service:
        with warehouse.connect() as connection:
            tenant = tenant_of_service(connection, service)
        check(request, warehouse, who, "metrics.read", Target(tenant=tenant))
    with warehouse.connect() as connection:
        try:
            recent = dora_report(connection, service, weeks)
        except RequestError as error:
            raise invalid(("query", "service"), str(error)) from None
    if recent is None:
        return DoraReport(service=service or ORGANISATION, weeks=weeks, summary=None, weekly=[])
    return DoraReport(**recent)
