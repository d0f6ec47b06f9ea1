"""GET /api/v1/rollbacks: rollbacks with their outcome, newest first, tenant scoped."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.pagination import ISO_TIME, UUID, page, read_cursor
from timbel_dagster.api.schemas.rollbacks import RollbackItem, RollbackPage
from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants
from timbel_dagster.warehouse.read.rollbacks import list_rollbacks
from timbel_dagster.warehouse.schema.deploy import ROLLBACK_STATUSES

Status = Literal[ROLLBACK_STATUSES]  # type: ignore[valid-type]

router = APIRouter(tags=["rollbacks"])


@router.get(
    "/rollbacks",
    summary="List rollbacks with their outcome, newest first",
    response_model=RollbackPage,
    responses=problems(*ERRORS_READ),
)
def rollbacks(
    who: Annotated[Principal, Depends(require("rollbacks.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    service: Annotated[str | None, Query(description="One service.")] = None,
    status: Annotated[Status | None, Query(description="The outcome.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Rows per page.")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> RollbackPage:
    """Rollbacks the deploy job and the health sensor made (and dry runs), of the caller's
    tenants' services and of services in no tenant (operations and admin: all)."""
    after = read_cursor(cursor, ISO_TIME, UUID) if cursor else None
    with warehouse.connect() as connection:
        rows = list_rollbacks(
            connection,
            after,  # type: ignore[arg-type]
            limit + 1,
            visible_tenants(who, "rollbacks.read"),
            service,
            status,
        )
    items, next_cursor = page(rows, limit, lambda row: (row["created_at"], row["id"]))
    return RollbackPage(items=[RollbackItem(**row) for row in items], next_cursor=next_cursor)
