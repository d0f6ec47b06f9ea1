"""/api/v1/pipelines: the pipelines (paged, tenant scoped) and each one's duration
statistics as `timbel executions stats` computes them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, ApiError, problems
from timbel_dagster.api.guard import check
from timbel_dagster.api.pagination import TEXT, page, read_cursor
from timbel_dagster.api.schemas.executions import Percentiles
from timbel_dagster.api.schemas.pipelines import PipelineItem, PipelinePage, PipelineStats
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants
from timbel_dagster.warehouse.read.history import duration_percentiles
from timbel_dagster.warehouse.read.pipelines import get_pipeline, list_pipelines

router = APIRouter(tags=["pipelines"])


@router.get(
    "/pipelines",
    summary="List pipelines by source and name, a page at a time",
    response_model=PipelinePage,
    responses=problems(*ERRORS_READ),
)
def pipelines(
    who: Annotated[Principal, Depends(require("pipelines.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Annotated[str | None, Query(description="Part of the pipeline name.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Rows per page.")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> PipelinePage:
    """Pipelines of the caller's tenants' services and of services in no tenant (operations
    and admin: all), ordered by source, then name."""
    after = read_cursor(cursor, TEXT, TEXT) if cursor else None
    with warehouse.connect() as connection:
        rows = list_pipelines(
            connection,
            after,  # type: ignore[arg-type]
            limit + 1,
            visible_tenants(who, "pipelines.read"),
            name,
        )
    items, next_cursor = page(rows, limit, lambda row: (row["source"], row["name"]))
    return PipelinePage(items=[PipelineItem(**row) for row in items], next_cursor=next_cursor)


@router.get(
    "/pipelines/{id}/stats",
    summary="A pipeline's finished executions, success rate and duration percentiles",
    response_model=PipelineStats,
    responses=problems(*ERRORS_READ, 404),
)
def pipeline_stats(
    request: Request,
    who: Annotated[Principal, Depends(require("pipelines.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    ident: Annotated[uuid.UUID, Path(alias="id", description="The pipeline's id.")],
    since: Annotated[
        dt.datetime | None, Query(description="Executions started at or after (ISO 8601).")
    ] = None,
) -> PipelineStats:
    """What `timbel executions stats --json` prints for this pipeline: finished executions
    (success, failed, aborted), the share that succeeded, p50/p90/p99 of their durations."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    with warehouse.connect() as connection:
        found = get_pipeline(connection, ident)
    if found is None:
        raise ApiError(404, f"no pipeline with id {str(ident)!r}", kind="not-found")
    # Outside the read: a refusal is audited in its own transaction (SQLite has one writer).
    check(request, warehouse, who, "pipelines.read", Target(tenant=found["tenant"]))
    with warehouse.connect() as connection:
        stats = duration_percentiles(connection, since=since, pipeline_ids=[ident])
    return PipelineStats(
        pipeline=PipelineItem(**found), stats=Percentiles(**stats[0]) if stats else None
    )
