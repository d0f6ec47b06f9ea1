"""Rollbacks with their outcome, newest first, a page at a time, tenant scoped by the
service rolled back (`service_owners.tenant`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from timbel_dagster.warehouse.read.scope import service_tenant, service_visible
from timbel_dagster.warehouse.schema.deploy import Rollback

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def list_rollbacks(
    connection: Connection,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 50,
    tenants: tuple[str, ...] | None = None,
    service: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` rollbacks after (created_at, id) `after`, newest first (ties by id
    descending), of services in one of `tenants` or in none (None: all)."""
    table = Rollback.__table__
    query = select(table, service_tenant(table.c.service).label("tenant")).where(
        service_visible(table.c.service, tenants)
    )
    if service:
        query = query.where(table.c.service == service)
    if status:
        query = query.where(table.c.status == status)
    if after is not None:
        query = query.where(tuple_(table.c.created_at, table.c.id) < tuple_(*after))
    query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
    return [dict(row) | {"id": str(row["id"])} for row in connection.execute(query).mappings()]
