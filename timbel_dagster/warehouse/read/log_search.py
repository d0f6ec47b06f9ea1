"""Full-text search of the stored logs, a page at a time: `timbel logs search` and
`GET /api/v1/logs/search`."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.read.scope import service_visible
from timbel_dagster.warehouse.read.substring import check_search, contains_text
from timbel_dagster.warehouse.schema.models import ExecutionLogChunk, Pipeline, PipelineExecution

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SEARCH_HOW = ("words", "substring")


@dataclass(frozen=True)
class LogMatch:
    execution_id: str
    pipeline: str
    external_id: str
    stream: str
    line_number: int
    line: str
    # Where the match is in the search's order, so a next page can start after it.
    started_at: dt.datetime | None = None
    offset: int = 0  # the start_offset of the chunk holding the line
    how: str = "words"  # full-text ("words", PostgreSQL) or a substring scan


@dataclass(frozen=True)
class SearchAfter:
    """A match's place in `search_logs`' order: the next page starts after it."""

    how: str
    started_at: dt.datetime | None
    execution_id: uuid.UUID
    stream: str
    offset: int
    line_number: int

    @classmethod
    def of(cls, match: LogMatch) -> SearchAfter:
        return cls(
            match.how,
            match.started_at,
            uuid.UUID(match.execution_id),
            match.stream,
            match.offset,
            match.line_number,
        )


def _words(pattern: str) -> list[str]:
    return [w for w in re.split(r"[^\w]+", pattern.lower()) if w]


def _from_chunk(
    started_at: dt.datetime | None,
    execution_id: uuid.UUID,
    stream: str,
    offset: int,
    inclusive: bool = True,
) -> Any:
    """The chunks after (or at, when `inclusive`) the given chunk in the search order: start
    descending (not started first), execution id descending, stream, offset."""
    from sqlalchemy import and_, or_

    chunk = ExecutionLogChunk.__table__
    started, ident = PipelineExecution.started_at, chunk.c.execution_id
    later_offset = chunk.c.start_offset >= offset if inclusive else chunk.c.start_offset > offset
    same_execution = and_(
        ident == execution_id,
        or_(chunk.c.stream > stream, and_(chunk.c.stream == stream, later_offset)),
    )
    later_in_tie = or_(ident < execution_id, same_execution)
    if started_at is None:
        return or_(started.is_not(None), and_(started.is_(None), later_in_tie))
    return or_(started < started_at, and_(started == started_at, later_in_tie))


def search_logs(
    connection: Connection,
    pattern: str,
    pipeline: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    after: SearchAfter | None = None,
    tenants: tuple[str, ...] | None = None,
) -> list[LogMatch]:
    """Lines of stored logs that match `pattern`, newest executions first (ties by execution
    id descending, then stream and line), after `after` when given.

    PostgreSQL: full-text search over the chunks (a GIN index on `to_tsvector('simple', ..)`),
    then the lines holding every word of the pattern. When that finds nothing (a pattern that
    is not made of words, or a word the parser keeps inside a longer token such as
    `java.lang.OutOfMemoryError`) and elsewhere (SQLite): a case-insensitive substring
    match (`ILIKE`, `%`, `_` and `\\` in the pattern match themselves), which on PostgreSQL
    the trigram index of migration 0021 serves. A next page keeps the way its first page
    searched (`after.how`).

    `tenants`: None for every tenant, else only executions of pipelines whose service is in
    one of them or in none.

    Raises:
        ValueError: the pattern is empty or shorter than `MIN_SEARCH_CHARS`, which no index
            can serve.
    """
    from sqlalchemy import func, literal_column, select

    check_search(pattern)
    chunk = ExecutionLogChunk.__table__
    base = (
        select(
            chunk.c.execution_id,
            chunk.c.stream,
            chunk.c.first_line,
            chunk.c.content,
            Pipeline.name,
            PipelineExecution.external_id,
            PipelineExecution.started_at,
            chunk.c.start_offset,
        )
        .join(PipelineExecution, PipelineExecution.id == chunk.c.execution_id)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .order_by(
            PipelineExecution.started_at.desc().nulls_first(),
            chunk.c.execution_id.desc(),
            chunk.c.stream,
            chunk.c.start_offset,
        )
    )
    if pipeline:
        base = base.where(Pipeline.name.ilike(f"%{pipeline}%"))
    if since:
        base = base.where(PipelineExecution.started_at >= since)
    if tenants is not None:
        base = base.where(service_visible(Pipeline.service, tenants))
    if after is not None:
        base = base.where(
            _from_chunk(after.started_at, after.execution_id, after.stream, after.offset)
        )

    words = _words(pattern)
    full_text = after is None or after.how == "words"
    if connection.dialect.name == "postgresql" and words and full_text:
        # The same expression as the GIN index, so that PostgreSQL can use it.
        simple = literal_column("'simple'::regconfig")
        query = base.where(
            func.to_tsvector(simple, chunk.c.content).op("@@")(
                func.plainto_tsquery(simple, pattern)
            )
        )
        found = _matching_lines(
            connection, query, lambda line: all(w in line for w in words), limit, "words", after
        )
        if found or after is not None:
            return found
    needle = pattern.lower()
    query = base.where(contains_text(chunk.c.content, pattern))
    return _matching_lines(
        connection, query, lambda line: needle in line, limit, "substring", after
    )


# Chunks read per query: the search stops reading once it has `limit` lines, so a common
# word costs a few batches, not every matching chunk of the warehouse.
BATCH = 200


def _matching_lines(
    connection: Connection,
    query: Any,
    matches: Any,
    limit: int,
    how: str,
    after: SearchAfter | None,
) -> list[LogMatch]:
    found: list[LogMatch] = []
    batch = query
    while True:
        rows = connection.execute(batch.limit(BATCH)).all()
        for execution_id, stream, first_line, content, name, external_id, started, offset in rows:
            # The chunk the previous page ended in: only its lines after the last match.
            resume = (
                after is not None
                and execution_id == after.execution_id
                and stream == after.stream
                and offset == after.offset
            )
            # Lines end at "\n" only, as `ExecutionLog.lines` counts them: a `\r` progress
            # bar stays one line, and a chunk's first line may continue the previous chunk's.
            for index, line in enumerate(content.removesuffix("\n").split("\n")):
                number = first_line + index
                if resume and after is not None and number <= after.line_number:
                    continue
                line = line.removesuffix("\r")
                if matches(line.lower()):
                    found.append(
                        LogMatch(
                            str(execution_id), name, external_id, stream, number, line,
                            started, offset, how,
                        )
                    )  # fmt: skip
                    if len(found) >= limit:
                        return found
        if len(rows) < BATCH:
            return found
        last = rows[-1]
        batch = query.where(_from_chunk(last[6], last[0], last[1], last[7], inclusive=False))
