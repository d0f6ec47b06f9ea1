"""GET /api/v1/audit/events: `timbel audit search` over HTTP, paged by event id."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.guard import invalid
from timbel_dagster.api.pagination import INT, page, read_cursor
from timbel_dagster.api.schemas.audit import AuditEventItem, AuditPage
from timbel_dagster.identity.principal import Principal
from timbel_dagster.warehouse.audit.chain import search_events

router = APIRouter(tags=["audit"])


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.replace(tzinfo=dt.UTC) if moment and moment.tzinfo is None else moment


@router.get(
    "/audit/events",
    summary="Search the audit log, newest first, a page at a time",
    response_model=AuditPage,
    responses=problems(*ERRORS_READ),
)
def audit_events(
    _who: Annotated[Principal, Depends(require("audit.search"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    actor: Annotated[str | None, Query(description="Exactly this actor.")] = None,
    action: Annotated[
        str | None,
        Query(
            description="An action, or a prefix ending in `.` (`deploy.`); a plain name "
            "also matches its sub-actions."
        ),
    ] = None,
    target: Annotated[
        str | None, Query(description="A substring of the target (case-insensitive).")
    ] = None,
    since: Annotated[dt.datetime | None, Query(description="At or after (ISO 8601).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Before (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Events per page.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> AuditPage:
    """The events still in the warehouse (archived ones: `timbel audit verify --archives`)
    that match every filter, as `timbel audit search --json` prints them."""
    since, until = _utc(since), _utc(until)
    if since and until and since >= until:
        raise invalid(("query", "until"), "until must be after since")
    before = read_cursor(cursor, INT)[0] if cursor else None
    with warehouse.connect() as connection:
        events = search_events(
            connection, actor, action, target, since, until, limit + 1, before_id=before
        )
    items, next_cursor = page(events, limit, lambda event: (event["id"],))
    return AuditPage(items=[AuditEventItem(**e) for e in items], next_cursor=next_cursor)
