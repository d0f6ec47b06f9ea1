"""Shared by the stored-template tests: a migrated warehouse with people, and templates."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select

from timbel_dagster.warehouse.audit.chain import search_events
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.schema.templates import (
    PipelineTemplate,
    PipelineTemplateRating,
    PipelineTemplateShare,
    PipelineTemplateTag,
    PipelineTemplateUsage,
    PipelineTemplateVersion,
)

TABLES = (
    PipelineTemplate,
    PipelineTemplateVersion,
    PipelineTemplateTag,
    PipelineTemplateShare,
    PipelineTemplateRating,
    PipelineTemplateUsage,
)
# name -> (role, team)
PEOPLE = {
    "alice": ("developer", "payments"),
    "bob": ("developer", "payments"),
    "carol": ("team_lead", "platform"),
    "dave": ("admin", "platform"),
    "erin": ("viewer", None),
    "frank": ("developer", "search"),
}
CI = """stages: [build]
build:
  stage: build
  image: {{ image | yaml }}
  script:
    - make {{ target }}
"""
CI_SCHEMA = {
    "image": {"default": "python:3.12", "description": "the build image"},
    "target": {"required": True, "description": "the make target"},
}


def with_people(warehouse_url: str) -> Any:
    """The engine of the migrated warehouse, with PEOPLE added to its users table (each test
    module wraps it in its `engine` fixture)."""
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        connection.execute(
            insert(User),
            [
                {"id": uuid.uuid4(), "source": "test", "name": n, "role": r, "team": t}
                for n, (r, t) in PEOPLE.items()
            ],
        )
    return engine


def counts(engine: Any) -> dict[str, int]:
    """Rows per template table."""
    with engine.connect() as connection:
        return {
            model.__tablename__: connection.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            for model in TABLES
        }


def events(engine: Any, action: str | None = None) -> list[dict[str, Any]]:
    """Audit events of the template features (or exactly `action`), oldest first."""
    with engine.connect() as connection:
        found = search_events(connection, action="template", limit=1000)[::-1]
    return [e for e in found if action is None or e["action"] == action]


def version_rows(engine: Any) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        table = PipelineTemplateVersion.__table__
        query = select(table).order_by(table.c.template_id, table.c.version)
        return [dict(r) for r in connection.execute(query).mappings()]
