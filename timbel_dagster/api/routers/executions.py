"""GET /api/v1/executions: the execution list of `timbel executions list`, paged by cursor."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.pagination import execution_cursor, read_execution_cursor
from timbel_dagster.api.schemas.executions import ExecutionPage, ExecutionSummary
from timbel_dagster.identity.principal import Principal
from timbel_dagster.warehouse.read.queries import ExecutionFilter, list_executions
from timbel_dagster.warehouse.schema.models import EXECUTION_STATUSES

MAX_LIMIT = 200
# The warehouse's statuses, so the OpenAPI document lists them as an enum.
Status = Literal[EXECUTION_STATUSES]  # type: ignore[valid-type]

router = APIRouter(tags=["executions"])


@router.get(
    "/executions",
    summary="List executions, newest first, a page at a time",
    response_model=ExecutionPage,
    responses=problems(*ERRORS_READ),
)
def executions(
    _who: Annotated[Principal, Depends(require("executions.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    pipeline: Annotated[str | None, Query(description="Part of the pipeline name.")] = None,
    status: Annotated[Status | None, Query()] = None,
    since: Annotated[
        dt.datetime | None, Query(description="Started at or after (ISO 8601; UTC if no zone).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> ExecutionPage:
    """Executions ordered by start (not yet started first, then newest first; ties by id).
    Follow `next_cursor` until it is null: each execution comes once, even while new ones
    arrive."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    where = ExecutionFilter(
        pipeline=pipeline,
        status=status,
        since=since,
        limit=limit + 1,  # one more than asked: whether a next page exists
        after=read_execution_cursor(cursor) if cursor else None,
    )
    with warehouse.connect() as connection:
        rows = list_executions(connection, where)
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return ExecutionPage(
        items=[ExecutionSummary(**row) for row in page],
        next_cursor=execution_cursor(last["started_at"], last["id"]) if more and last else None,
    )
