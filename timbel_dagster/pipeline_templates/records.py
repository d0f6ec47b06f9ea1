"""Reading and writing the rows of stored template versions (shared by the store modules).

`insert_version` is the only write to `pipeline_template_versions`: versions are immutable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.schema.ids import integer_key, is_number
from timbel_dagster.warehouse.schema.templates import PipelineTemplateTag as T
from timbel_dagster.warehouse.schema.templates import PipelineTemplateVersion

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

LATEST = "latest"  # a reserved tag: always the newest version


@contextmanager
def reading(bind: Engine | Connection) -> Iterator[Connection]:
    """A connection from an engine (opened and closed here), or the given connection."""
    from sqlalchemy.engine import Connection

    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as connection:
            yield connection


def sha256(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def versions_table() -> Any:
    return PipelineTemplateVersion.__table__


def tags_of(connection: Connection, template_id: uuid.UUID) -> dict[int, list[str]]:
    from sqlalchemy import select

    tags: dict[int, list[str]] = {}
    query = select(T.tag, T.version).where(T.template_id == template_id).order_by(T.tag)
    for tag, version in connection.execute(query):
        tags.setdefault(version, []).append(tag)
    return tags


def record(template: Mapping[str, Any], row: Mapping[str, Any], tags: list[str]) -> dict:
    return {
        "name": template["name"],
        "kind": template["kind"],
        "owner": template["owner"],
        "visibility": template["visibility"],
        "version": row["version"],
        "content": row["content"],
        "parameters": row["parameters"],
        "content_sha256": row["content_sha256"],
        "release_notes": row["release_notes"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "rollback_of_version": row["rollback_of_version"],
        "tags": tags,
        "retired_at": template.get("retired_at"),
        "retired_by": template.get("retired_by"),
        "retired_reason": template.get("retired_reason"),
    }


def latest(connection: Connection, template_id: uuid.UUID) -> dict[str, Any] | None:
    from sqlalchemy import select

    table = versions_table()
    query = select(table).where(table.c.template_id == template_id)
    row = connection.execute(query.order_by(table.c.version.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def version_row(
    connection: Connection,
    template: Mapping[str, Any],
    version: int | str | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """One version of a template: by number, by tag (a string that is all digits is a
    number), or the latest.

    Raises:
        ValueError: both a version and a tag. LookupError: no such version or tag.
    """
    from sqlalchemy import select

    if version is not None and tag is not None:
        raise ValueError("give a version or a tag, not both")
    if isinstance(version, str):
        if is_number(version) and integer_key(version) is None:
            raise LookupError(f"template {template['name']!r} has no version {version}")
        version, tag = (int(version), None) if is_number(version) else (None, version)
    if tag is not None and tag != LATEST:
        found = connection.execute(
            select(T.version).where(T.template_id == template["id"], T.tag == tag)
        ).scalar_one_or_none()
        if found is None:
            raise LookupError(f"template {template['name']!r} has no tag {tag!r}")
        version = found
    if version is None:
        newest = latest(connection, template["id"])
        if newest is None:  # every template is created with its first version
            raise LookupError(f"template {template['name']!r} has no versions")
        return newest
    table = versions_table()
    row = (
        connection.execute(
            select(table).where(table.c.template_id == template["id"], table.c.version == version)
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise LookupError(f"template {template['name']!r} has no version {version}")
    return dict(row)


def insert_version(
    connection: Connection,
    template: Mapping[str, Any],
    number: int,
    content: str,
    schema: Mapping[str, Any],
    notes: str,
    actor: str,
    rollback_of: int | None = None,
) -> dict[str, Any]:
    from sqlalchemy import insert

    row = {
        "id": uuid.uuid4(),
        "template_id": template["id"],
        "version": number,
        "content": content,
        "parameters": dict(schema),
        "content_sha256": sha256(content),
        "release_notes": notes,
        "created_by": actor,
        "created_at": dt.datetime.now(dt.UTC),
        "rollback_of_version": rollback_of,
    }
    connection.execute(insert(versions_table()).values(**row))
    return row
