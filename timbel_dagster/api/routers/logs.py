"""GET /api/v1/logs/search: `timbel logs search` over HTTP, paged by cursor."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.guard import invalid
from timbel_dagster.api.pagination import INT, ISO_TIME, TEXT, UUID, page, read_cursor
from timbel_dagster.api.schemas.executions import LogMatch, LogSearchPage
from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants
from timbel_dagster.warehouse.read.log_search import SEARCH_HOW, SearchAfter, search_logs
from timbel_dagster.warehouse.read.substring import check_search

router = APIRouter(tags=["executions"])


def _how(value: object) -> str:
    if value not in SEARCH_HOW:
        raise ValueError("unknown search kind")
    return str(value)


@router.get(
    "/logs/search",
    summary="Find lines in the stored logs, newest executions first",
    response_model=LogSearchPage,
    responses=problems(*ERRORS_READ),
)
def logs_search(
    who: Annotated[Principal, Depends(require("logs.search"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    q: Annotated[
        str,
        Query(min_length=1, max_length=200, pattern=r"\S", description="Words or text to find."),
    ],
    pipeline: Annotated[str | None, Query(description="Part of the pipeline name.")] = None,
    since: Annotated[
        dt.datetime | None, Query(description="Executions started at or after (ISO 8601).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Lines per page.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> LogSearchPage:
    """Full-text on PostgreSQL (every word of `q` in the line), a substring scan when that
    finds nothing and on SQLite: the lines `timbel logs search` prints. Only executions of
    the caller's tenants' services and of services in no tenant (operations: all). `q` needs
    3 characters at least (422 otherwise): no index serves a shorter substring."""
    try:
        check_search(q)
    except ValueError as error:
        raise invalid(("query", "q"), str(error)) from None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    after = (
        SearchAfter(*read_cursor(cursor, _how, ISO_TIME, UUID, TEXT, INT, INT)) if cursor else None
    )
    with warehouse.connect() as connection:
        found = search_logs(
            connection,
            q,
            pipeline=pipeline,
            since=since,
            limit=limit + 1,
            after=after,
            tenants=visible_tenants(who, "logs.search"),
        )
    key = SearchAfter.of
    items, next_cursor = page(found, limit, lambda m: tuple(vars(key(m)).values()))
    return LogSearchPage(
        items=[
            LogMatch(
                execution_id=m.execution_id, pipeline=m.pipeline, external_id=m.external_id,
                stream=m.stream, line_number=m.line_number, line=m.line,
            )
            for m in items
        ],
        next_cursor=next_cursor,
    )  # fmt: skip
