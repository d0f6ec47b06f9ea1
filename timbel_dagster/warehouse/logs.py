"""Execution logs in the warehouse: appended in whole lines, resumable, searchable.

A log stream is stored as chunks of complete lines, each tagged with the byte offset in the
source log where it starts. The stored size is therefore always the end of a whole line, and
following a build resumes from it after any disconnect or restart: the half line that was
not stored is simply read again, so the stored log is byte-identical to the source (for
UTF-8 logs without NUL bytes, which PostgreSQL text cannot hold; those become U+FFFD).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.warehouse.models import (
    ExecutionLog,
    ExecutionLogChunk,
    Pipeline,
    PipelineExecution,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

CHUNK_BYTES = 1 << 20  # store once this many bytes of whole lines have arrived


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


class LogWriter:
    """Appends one log stream of one execution; every stored chunk is its own transaction."""

    def __init__(
        self,
        engine: Engine,
        execution_id: uuid.UUID,
        stream: str = "",
        name: str | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        from sqlalchemy import select

        self.engine, self.execution_id, self.stream, self.name = engine, execution_id, stream, name
        self.chunk_bytes = chunk_bytes
        table = ExecutionLog.__table__
        with engine.connect() as connection:
            row = connection.execute(
                select(table.c.size, table.c.lines, table.c.complete).where(
                    table.c.execution_id == execution_id, table.c.stream == stream
                )
            ).first()
        self.stored, self.lines, self.complete = (row[0], row[1], row[2]) if row else (0, 0, False)
        self._pending = bytearray()

    @property
    def next_offset(self) -> int:
        """Where the next read of the source should start: after everything received."""
        return self.stored + len(self._pending)

    def write(self, data: bytes) -> str:
        """Take the next bytes of the log; returns the text stored by this call (maybe none)."""
        self._pending += data
        if len(self._pending) < self.chunk_bytes:
            return ""
        return self.flush()

    def flush(self, final: bool = False) -> str:
        """Store every complete line received (and, when `final`, the unterminated rest)."""
        cut = len(self._pending) if final else self._pending.rfind(b"\n") + 1
        if cut <= 0 and not final:
            return ""
        piece = bytes(self._pending[:cut])
        del self._pending[:cut]
        text = _text(piece)
        self._store(piece, text, complete=final)
        return text

    def _store(self, piece: bytes, text: str, complete: bool) -> None:
        from timbel_dagster.warehouse.upsert import bulk_upsert

        lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        with self.engine.begin() as connection:
            bulk_upsert(
                connection,
                ExecutionLog.__table__,
                [
                    {
                        "execution_id": self.execution_id,
                        "stream": self.stream,
                        "name": self.name,
                        "size": self.stored + len(piece),
                        "lines": self.lines + lines,
                        "complete": complete,
                        "updated_at": dt.datetime.now(dt.UTC),
                    }
                ],
                ["execution_id", "stream"],
            )
            if piece:
                connection.execute(
                    ExecutionLogChunk.__table__.insert().values(
                        execution_id=self.execution_id,
                        stream=self.stream,
                        start_offset=self.stored,
                        first_line=self.lines + 1,
                        length=len(piece),
                        content=text,
                    )
                )
        self.stored += len(piece)
        self.lines += lines
        self.complete = complete


def read_log(
    connection: Connection, execution_id: uuid.UUID, stream: str | None = None
) -> Iterator[str]:
    """The stored text of an execution's logs, stream by stream, chunk by chunk."""
    from sqlalchemy import select

    table = ExecutionLogChunk.__table__
    query = select(table.c.content).where(table.c.execution_id == execution_id)
    if stream is not None:
        query = query.where(table.c.stream == stream)
    yield from connection.execute(query.order_by(table.c.stream, table.c.start_offset)).scalars()


def log_tail(connection: Connection, execution_id: uuid.UUID, chars: int) -> str:
    """The last `chars` characters of `read_log`, reading only the newest chunks."""
    from sqlalchemy import select

    table = ExecutionLogChunk.__table__
    newest_first = connection.execute(
        select(table.c.content)
        .where(table.c.execution_id == execution_id)
        .order_by(table.c.stream.desc(), table.c.start_offset.desc())
    ).scalars()
    pieces: list[str] = []
    size = 0
    for content in newest_first:
        pieces.append(content)
        size += len(content)
        if size >= chars:
            break
    return "".join(reversed(pieces))[-chars:]


@dataclass(frozen=True)
class LogMatch:
    execution_id: str
    pipeline: str
    external_id: str
    stream: str
    line_number: int
    line: str


def _words(pattern: str) -> list[str]:
    return [w for w in re.split(r"[^\w]+", pattern.lower()) if w]


def search_logs(
    connection: Connection,
    pattern: str,
    pipeline: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
) -> list[LogMatch]:
    """Lines of stored logs that match `pattern`, newest executions first.

    PostgreSQL: full-text search over the chunks (a GIN index on `to_tsvector('simple', ..)`),
    then the lines holding every word of the pattern. When that finds nothing (a pattern that
    is not made of words, say) and elsewhere (SQLite): a case-insensitive substring scan.
    """
    from sqlalchemy import func, literal_column, select

    if not pattern.strip():
        raise ValueError("the search pattern is empty")
    chunk = ExecutionLogChunk.__table__
    base = (
        select(
            chunk.c.execution_id,
            chunk.c.stream,
            chunk.c.first_line,
            chunk.c.content,
            Pipeline.name,
            PipelineExecution.external_id,
        )
        .join(PipelineExecution, PipelineExecution.id == chunk.c.execution_id)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .order_by(PipelineExecution.started_at.desc(), chunk.c.stream, chunk.c.start_offset)
    )
    if pipeline:
        base = base.where(Pipeline.name.ilike(f"%{pipeline}%"))
    if since:
        base = base.where(PipelineExecution.started_at >= since)

    words = _words(pattern)
    if connection.dialect.name == "postgresql" and words:
        # The same expression as the GIN index, so that PostgreSQL can use it.
        simple = literal_column("'simple'::regconfig")
        query = base.where(
            func.to_tsvector(simple, chunk.c.content).op("@@")(
                func.plainto_tsquery(simple, pattern)
            )
        )
        found = _matching_lines(
            connection, query, lambda line: all(w in line for w in words), limit
        )
        if found:
            return found
    needle = pattern.lower()
    query = base.where(chunk.c.content.ilike(f"%{pattern}%"))
    return _matching_lines(connection, query, lambda line: needle in line, limit)


def _matching_lines(connection: Connection, query: Any, matches: Any, limit: int) -> list[LogMatch]:
    found: list[LogMatch] = []
    for execution_id, stream, first_line, content, name, external_id in connection.execute(query):
        for offset, line in enumerate(content.splitlines()):
            if matches(line.lower()):
                found.append(
                    LogMatch(
                        str(execution_id), name, external_id, stream, first_line + offset, line
                    )
                )
                if len(found) >= limit:
                    return found
    return found
