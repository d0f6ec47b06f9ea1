"""Pipelines for the API's list: a page at a time, in (source, name) order, tenant scoped."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from timbel_dagster.warehouse.read.scope import service_tenant, service_visible
from timbel_dagster.warehouse.schema.models import Pipeline

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_COLUMNS = (
    Pipeline.id,
    Pipeline.source,
    Pipeline.ci_system,
    Pipeline.name,
    Pipeline.service,
    service_tenant(Pipeline.service).label("tenant"),
    Pipeline.repository,
    Pipeline.default_branch,
    Pipeline.url,
)


def _plain(row: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row._mapping.items()}


def list_pipelines(
    connection: Connection,
    after: tuple[str, str] | None = None,
    limit: int = 50,
    tenants: tuple[str, ...] | None = None,
    name: str | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` pipelines after (source, name) `after`, in that order (the unique
    (source, name) index's), whose service is in one of `tenants` or in none (None: all);
    `name`: a part of the name."""
    query = select(*_COLUMNS).where(service_visible(Pipeline.service, tenants))
    if name:
        query = query.where(Pipeline.name.ilike(f"%{name}%"))
    if after is not None:
        query = query.where(tuple_(Pipeline.source, Pipeline.name) > tuple_(*after))
    query = query.order_by(Pipeline.source, Pipeline.name).limit(limit)
    return [_plain(row) for row in connection.execute(query)]


def get_pipeline(connection: Connection, ident: uuid.UUID) -> dict[str, Any] | None:
    """One pipeline with its service's tenant, or None."""
    row = connection.execute(select(*_COLUMNS).where(Pipeline.id == ident)).first()
    return _plain(row) if row is not None else None
