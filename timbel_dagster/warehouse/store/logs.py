"""Execution logs in the warehouse: appended in chunks, resumable, searchable, capped.

A log stream is stored as chunks, each tagged with the byte offset in the source log where it
starts, so following a build resumes from the stored size after any disconnect or restart and
the stored log is byte-identical to the source (for UTF-8 logs without NUL bytes, which
PostgreSQL text cannot hold; those become U+FFFD).

A chunk ends after a whole line when it can. A line longer than the chunk size (a progress
bar redrawn with carriage returns, never a newline) is cut instead: before its last carriage
return when it has one (where the bar redraws), else between two characters. The rest of the
line continues the next chunk, whose `first_line` is then the same line. So at most
`chunk_bytes` of a log ever wait in memory.

An execution's streams together store at most `LogCap.max_bytes` bytes of the source
(`TIMBEL_LOG_MAX_BYTES_PER_EXECUTION`); past it each open stream ends with one marker line
saying where the rest is (a chunk covering no source bytes), and is complete.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timbel_dagster.warehouse.schema.models import (
    ExecutionLog,
    ExecutionLogChunk,
)
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# The most bytes in one chunk and waiting unstored. Small enough that PostgreSQL can index any
# chunk: `to_tsvector` refuses more than 1 MiB of lexemes and positions, and a 1 MiB chunk of
# distinct short words needs 1.7 MiB (a 256 KiB one at most about 0.6 MiB).
CHUNK_BYTES = 256 * 1024
TRUNCATED = "[timbel] truncated: log exceeded {limit} bytes; the rest is on the CI server at {url}"


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _whole_characters(data: bytearray, end: int) -> int:
    """`end`, or the start of the UTF-8 character that cutting at `end` would split."""
    for start in range(end - 1, max(end - 4, 0) - 1, -1):
        byte = data[start]
        if byte < 0x80:
            return end
        if byte >= 0xC0:  # the lead byte of a 2, 3 or 4-byte character
            size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return start if start + size > end and start > 0 else end
    return end


class LogCap:
    """What an execution's logs may still take in, shared by all of its streams.

    Bytes count when a writer accepts them (stored or waiting); what is stored already, by
    an earlier follower too, counts from the start.
    """

    def __init__(self, engine: Engine, execution_id: uuid.UUID, max_bytes: int) -> None:
        from sqlalchemy import func, select

        table = ExecutionLog.__table__
        with engine.connect() as connection:
            used = connection.execute(
                select(func.coalesce(func.sum(table.c.size), 0)).where(
                    table.c.execution_id == execution_id
                )
            ).scalar_one()
        self.max_bytes = max_bytes
        self.left = max(0, max_bytes - int(used))
        self.exceeded = False  # more was offered than the cap let in

    def take(self, size: int) -> int:
        """How many of the next `size` bytes may be kept."""
        taken = min(size, self.left)
        self.left -= taken
        if taken < size:
            self.exceeded = True
        return taken


class LogWriter:
    """Appends one log stream of one execution; every stored chunk is its own transaction."""

    def __init__(
        self,
        engine: Engine,
        execution_id: uuid.UUID,
        stream: str = "",
        name: str | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        cap: LogCap | None = None,
        url: str | None = None,
    ) -> None:
        """`cap`: the execution's byte budget (none: unlimited); `url`: where the log can be
        read on the CI server, named in the truncation marker."""
        from sqlalchemy import func, select

        self.engine, self.execution_id, self.stream, self.name = engine, execution_id, stream, name
        self.chunk_bytes, self.cap, self.url = chunk_bytes, cap, url
        table, chunk = ExecutionLog.__table__, ExecutionLogChunk.__table__
        with engine.connect() as connection:
            row = connection.execute(
                select(table.c.size, table.c.lines, table.c.complete).where(
                    table.c.execution_id == execution_id, table.c.stream == stream
                )
            ).first()
            # Whether the stored text ends part-way through a line that the next chunk continues.
            last = connection.execute(
                select(func.substr(chunk.c.content, func.length(chunk.c.content), 1))
                .where(chunk.c.execution_id == execution_id, chunk.c.stream == stream)
                .order_by(chunk.c.start_offset.desc())
                .limit(1)
            ).scalar()
        self.stored, self.lines, self.complete = (row[0], row[1], row[2]) if row else (0, 0, False)
        self._open_line = last is not None and last != "\n"
        self._pending = bytearray()

    @property
    def next_offset(self) -> int:
        """Where the next read of the source should start: after everything received."""
        return self.stored + len(self._pending)

    @property
    def buffered(self) -> int:
        """Bytes received but not stored yet: never more than `chunk_bytes`."""
        return len(self._pending)

    def write(self, data: bytes) -> str:
        """Take the next bytes of the log; returns the text stored by this call (maybe none).

        Past the cap, what fits is stored, then the truncation marker, and the stream is
        complete: later bytes are ignored.
        """
        if self.complete:
            return ""
        taken = self.cap.take(len(data)) if self.cap else len(data)
        rest = memoryview(data)[:taken]
        stored = []
        while rest:
            room = self.chunk_bytes - len(self._pending)
            self._pending += rest[:room]
            rest = rest[room:]
            if len(self._pending) >= self.chunk_bytes:
                stored.append(self._store_pending(self._cut()))
        if taken < len(data):
            stored.append(self.truncate())
        return "".join(stored)

    def _cut(self) -> int:
        """Where a full buffer is cut: after its last line, else before its last carriage
        return (so a progress bar's frames stay whole), else between two characters."""
        cut = self._pending.rfind(b"\n") + 1
        if cut <= 0:
            cut = self._pending.rfind(b"\r")
        return cut if cut > 0 else _whole_characters(self._pending, len(self._pending))

    def flush(self, final: bool = False) -> str:
        """Store every complete line received (and, when `final`, the unterminated rest)."""
        if self.complete:
            return ""
        cut = len(self._pending) if final else self._pending.rfind(b"\n") + 1
        if cut <= 0 and not final:
            return ""
        return self._store_pending(cut, complete=final)

    def truncate(self) -> str:
        """Store what was received, then one line saying that the log was cut and where the
        rest is; the stream is complete, so following it stops."""
        if self.complete:
            return ""
        text = self._store_pending(len(self._pending)) if self._pending else ""
        limit = self.cap.max_bytes if self.cap else self.stored
        marker = TRUNCATED.format(limit=limit, url=self.url or "the build's page")
        marker = ("\n" if self._open_line else "") + marker + "\n"
        self._store(0, marker, complete=True)
        return text + marker

    def _store_pending(self, cut: int, complete: bool = False) -> str:
        piece = bytes(self._pending[:cut])
        del self._pending[:cut]
        text = _text(piece)
        self._store(len(piece), text, complete)
        return text

    def _store(self, length: int, text: str, complete: bool) -> None:
        """One chunk covering `length` bytes of the source (0: the truncation marker)."""

        lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        first_line = self.lines + 1
        if self._open_line and text:  # its first line is the one the last chunk left open
            first_line, lines = self.lines, lines - 1
        with self.engine.begin() as connection:
            bulk_upsert(
                connection,
                ExecutionLog.__table__,
                [
                    {
                        "execution_id": self.execution_id,
                        "stream": self.stream,
                        "name": self.name,
                        "size": self.stored + length,
                        "lines": self.lines + lines,
                        "complete": complete,
                        "updated_at": dt.datetime.now(dt.UTC),
                    }
                ],
                ["execution_id", "stream"],
            )
            if text:
                connection.execute(
                    ExecutionLogChunk.__table__.insert().values(
                        execution_id=self.execution_id,
                        stream=self.stream,
                        start_offset=self.stored,
                        first_line=first_line,
                        length=length,
                        content=text,
                    )
                )
        self.stored += length
        self.lines += lines
        self.complete = complete
        if text:
            self._open_line = not text.endswith("\n")


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
class LogChunk:
    stream: str
    start_offset: int
    first_line: int
    content: str


def log_chunks(
    connection: Connection,
    execution_id: uuid.UUID,
    after: tuple[str, int] | None = None,
    limit: int = 20,
    stream: str | None = None,
) -> list[LogChunk]:
    """Up to `limit` stored chunks of an execution's logs in `read_log`'s order (stream, then
    offset), after the chunk at (stream, start_offset) `after`: the primary key's order, so
    a page of a long log reads just its rows."""
    from sqlalchemy import select, tuple_

    table = ExecutionLogChunk.__table__
    query = select(table.c.stream, table.c.start_offset, table.c.first_line, table.c.content).where(
        table.c.execution_id == execution_id
    )
    if stream is not None:
        query = query.where(table.c.stream == stream)
    if after is not None:
        query = query.where(tuple_(table.c.stream, table.c.start_offset) > tuple_(*after))
    query = query.order_by(table.c.stream, table.c.start_offset).limit(limit)
    return [LogChunk(*row) for row in connection.execute(query)]
