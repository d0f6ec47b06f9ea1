"""/api/v1/executions: the list of `timbel executions list` (paged by cursor), one
execution as `timbel executions show` has it, its stages and its stored log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, ApiError, problems
from timbel_dagster.api.guard import check, invalid
from timbel_dagster.api.pagination import (
    INT,
    TEXT,
    page,
    read_cursor,
    read_execution_cursor,
)
from timbel_dagster.api.schemas.executions import (
    ExecutionDetail,
    ExecutionPage,
    ExecutionSummary,
    LogChunk,
    LogPage,
    Stage,
    StageList,
)
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants
from timbel_dagster.warehouse.read.history import execution_detail
from timbel_dagster.warehouse.read.queries import (
    ExecutionFilter,
    execution_stages,
    execution_tenant,
    list_executions,
)
from timbel_dagster.warehouse.schema.models import EXECUTION_STATUSES
from timbel_dagster.warehouse.store.logs import log_chunks

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
    who: Annotated[Principal, Depends(require("executions.read"))],
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
    arrive. A tenant member sees the executions of their tenants' services and of services
    in no tenant; operations and admin see all."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    where = ExecutionFilter(
        pipeline=pipeline,
        status=status,
        since=since,
        limit=limit + 1,  # one more than asked: whether a next page exists
        after=read_execution_cursor(cursor) if cursor else None,
        tenants=visible_tenants(who, "executions.read"),
    )
    with warehouse.connect() as connection:
        rows = list_executions(connection, where)
    items, next_cursor = page(rows, limit, lambda row: (row["started_at"], row["id"]))
    return ExecutionPage(
        items=[ExecutionSummary(**row) for row in items],
        next_cursor=next_cursor,
    )


def _not_found(ident: object) -> ApiError:
    return ApiError(404, f"no execution with id {str(ident)!r}", kind="not-found")


def _visible(request: Request, warehouse: Engine, who: Principal, ident: uuid.UUID, action: str):
    """404 for an unknown execution, 403 (audited) for one of a tenant `who` may not see."""
    with warehouse.connect() as connection:
        found = execution_tenant(connection, ident)
    if found is None:
        raise _not_found(ident)
    check(request, warehouse, who, action, Target(tenant=found[0]))


@router.get(
    "/executions/{id}",
    summary="One execution with its stages and its pipeline's typical durations",
    response_model=ExecutionDetail,
    responses=problems(*ERRORS_READ, 404),
)
def execution(
    request: Request,
    who: Annotated[Principal, Depends(require("executions.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    ident: Annotated[
        str,
        Path(
            alias="id",
            min_length=6,
            max_length=36,
            description="The full id, or a prefix of at least 6 characters.",
        ),
    ],
) -> ExecutionDetail:
    """What `timbel executions show --json` prints: the execution, its stages with their
    offsets from its start, and the p50/p90/p99 of its pipeline's finished runs."""
    with warehouse.connect() as connection:
        try:
            found = execution_detail(connection, ident)
        except LookupError as error:
            raise invalid(("path", "id"), str(error)) from None
    if found is None:
        raise _not_found(ident)
    check(request, warehouse, who, "executions.read", Target(tenant=found["tenant"]))
    return ExecutionDetail(**found)


@router.get(
    "/executions/{id}/stages",
    summary="An execution's stages in order",
    response_model=StageList,
    responses=problems(*ERRORS_READ, 404),
)
def stages(
    request: Request,
    who: Annotated[Principal, Depends(require("executions.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    ident: Annotated[uuid.UUID, Path(alias="id", description="The execution's full id.")],
) -> StageList:
    """The stages (Jenkins stages, GitLab jobs) by position, retries as further attempts."""
    _visible(request, warehouse, who, ident, "executions.read")
    with warehouse.connect() as connection:
        rows = execution_stages(connection, ident)
    return StageList(items=[Stage(**row) for row in rows])


@router.get(
    "/executions/{id}/log",
    summary="An execution's stored log, a page of chunks at a time",
    response_model=LogPage,
    responses=problems(*ERRORS_READ, 404),
)
def log(
    request: Request,
    who: Annotated[Principal, Depends(require("logs.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    ident: Annotated[uuid.UUID, Path(alias="id", description="The execution's full id.")],
    stream: Annotated[
        str | None, Query(description="One stream only ('' for Jenkins, a GitLab job id).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Chunks (of up to 256 KiB).")] = 10,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> LogPage:
    """The stored chunks in `timbel executions show --log`'s order (stream, then offset);
    concatenated they are the log as the CI server sent it. A log that is still being
    followed grows: a null `next_cursor` means nothing more is stored yet."""
    _visible(request, warehouse, who, ident, "logs.read")
    after = read_cursor(cursor, TEXT, INT) if cursor else None
    with warehouse.connect() as connection:
        rows = log_chunks(connection, ident, after, limit + 1, stream)  # type: ignore[arg-type]
    items, next_cursor = page(rows, limit, lambda c: (c.stream, c.start_offset))
    return LogPage(
        items=[LogChunk(**vars(c)) for c in items], next_cursor=next_cursor
    )  # fmt: skip
