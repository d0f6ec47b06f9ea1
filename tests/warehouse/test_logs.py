"""Stored logs stay bounded: long lines are flushed in chunks, an execution's logs are capped.

Issue #13, finding 5b: a log chunk without a newline (a carriage-return progress bar) was
held in memory without bound (69 MB buffered, nothing stored), and a log had no size cap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import string
import uuid

import pytest
from sqlalchemy import select

from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.read.log_search import search_logs
from timbel_dagster.warehouse.schema.models import (
    ExecutionLog,
    ExecutionLogChunk,
    Pipeline,
    PipelineExecution,
)
from timbel_dagster.warehouse.store.logs import (
    CHUNK_BYTES,
    LogCap,
    LogWriter,
    read_log,
)

BLOCK = 1 << 20  # what the CI clients hand over at a time (`iter_content(1 MiB)`)


def _execution(url: str) -> uuid.UUID:
    """A pipeline with one execution, for logs to belong to."""
    pipeline_id, execution_id = uuid.uuid4(), uuid.uuid4()
    with get_engine(url).begin() as connection:
        connection.execute(
            Pipeline.__table__.insert().values(
                id=pipeline_id, source="jenkins", ci_system="jenkins", name="shop/api/main"
            )
        )
        connection.execute(
            PipelineExecution.__table__.insert().values(
                id=execution_id,
                source="jenkins",
                pipeline_id=pipeline_id,
                external_id="7",
                status="running",
                started_at=dt.datetime.now(dt.UTC),
            )
        )
    return execution_id


def _chunks(url: str, execution_id: uuid.UUID) -> list[tuple[str, int, int, int, str]]:
    table = ExecutionLogChunk.__table__
    with get_engine(url).connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(
                    table.c.stream,
                    table.c.start_offset,
                    table.c.first_line,
                    table.c.length,
                    table.c.content,
                )
                .where(table.c.execution_id == execution_id)
                .order_by(table.c.stream, table.c.start_offset)
            )
        ]


def _stored(url: str, execution_id: uuid.UUID) -> bytes:
    with get_engine(url).connect() as connection:
        return "".join(read_log(connection, execution_id)).encode()


PROGRESS = b"".join(
    f"\rDownloading layer {n % 100:3d}% [{'=' * (n % 30):30}]".encode() for n in range(400)
)
EURO = "build \u20ac ".encode() * 1000  # 3-byte characters: a cut must not split one


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pattern", [PROGRESS, EURO], ids=["progress-bar", "utf-8"])
def test_ten_megabytes_without_a_newline_are_stored_as_they_arrive(
    warehouse_url: str, pattern: bytes
) -> None:
    """The buffer never holds more than one chunk: a line longer than that is stored in
    pieces, each continuing the same line, and the stored log is the source byte for byte."""
    execution_id = _execution(warehouse_url)
    engine = get_engine(warehouse_url)
    source = (pattern * (10_000_000 // len(pattern) + 1))[:10_000_000]
    writer = LogWriter(engine, execution_id)
    fed = 0
    for start in range(0, len(source), BLOCK):
        writer.write(source[start : start + BLOCK])
        fed = min(start + BLOCK, len(source))
        assert writer.buffered <= CHUNK_BYTES
        assert writer.stored == fed - writer.buffered  # everything else is in the warehouse
        assert writer.stored >= fed - CHUNK_BYTES
    writer.flush(final=True)
    assert writer.buffered == 0 and writer.stored == len(source) and writer.lines == 1

    chunks = _chunks(warehouse_url, execution_id)
    assert len(chunks) >= len(source) // CHUNK_BYTES
    assert all(0 < length <= CHUNK_BYTES for _s, _o, _l, length, _c in chunks)
    assert {first_line for _s, _o, first_line, _l, _c in chunks} == {1}  # one long line
    assert _stored(warehouse_url, execution_id) == source
    if pattern is PROGRESS:  # cut where the bar redraws: every piece holds whole frames
        assert all(content.startswith("\r") for *_rest, content in chunks)
        assert all(content.endswith("]") for *_rest, content in chunks[:-1])
    with engine.connect() as connection:
        found = search_logs(connection, "Downloading layer  42%", limit=3)
        state = connection.execute(select(ExecutionLog.size, ExecutionLog.lines)).one()
    assert state == (len(source), 1)
    if pattern is PROGRESS:
        assert found and {m.line_number for m in found} == {1}


def test_lines_continued_across_chunks_keep_their_numbers(warehouse_url: str) -> None:
    execution_id = _execution(warehouse_url)
    engine = get_engine(warehouse_url)
    source = b"first line\r\n" + b"x" * 900 + b" needle-at-the-end\n" + b"last line\n"
    writer = LogWriter(engine, execution_id, chunk_bytes=256)
    writer.write(source)
    writer.flush(final=True)
    assert writer.lines == 3
    with engine.connect() as connection:
        found = {m.line: m.line_number for m in search_logs(connection, "line")}
        [needle] = search_logs(connection, "needle-at-the-end")
    assert found == {"first line": 1, "last line": 3}  # a CRLF ending is not part of the line
    # the line's last piece, numbered as the line it continues
    assert needle.line_number == 2 and needle.line == "x" * 132 + " needle-at-the-end"
    assert _stored(warehouse_url, execution_id) == source


def test_a_resumed_writer_continues_the_open_line(warehouse_url: str) -> None:
    execution_id = _execution(warehouse_url)
    engine = get_engine(warehouse_url)
    first = LogWriter(engine, execution_id, chunk_bytes=256)
    first.write(b"y" * 600)  # two full chunks of one line stored, 88 bytes waiting
    assert (first.stored, first.lines, first.buffered) == (512, 1, 88)
    # the process dies; the next follower reads again from byte 512
    second = LogWriter(engine, execution_id, chunk_bytes=256)
    assert (second.next_offset, second.lines) == (512, 1)
    second.write(b"y" * 88 + b" done\nnext\n")
    second.flush(final=True)
    assert second.lines == 2
    with engine.connect() as connection:
        [match] = search_logs(connection, "next")
    assert match.line_number == 2
    assert _stored(warehouse_url, execution_id) == b"y" * 600 + b" done\nnext\n"


def test_chunks_of_distinct_words_can_be_indexed_on_postgresql(warehouse_url: str) -> None:
    """PostgreSQL's `to_tsvector` (the search index) refuses over 1 MiB of lexemes: a 1 MiB
    chunk of distinct words failed to store; chunks are small enough for any text."""
    execution_id = _execution(warehouse_url)
    words = ("".join(w) for w in itertools.product(string.ascii_lowercase, repeat=5))
    lines = []
    size = 0
    while size < 2 * (1 << 20):
        line = " ".join(itertools.islice(words, 15)) + "\n"
        lines.append(line)
        size += len(line)
    source = "".join(lines).encode()
    writer = LogWriter(get_engine(warehouse_url), execution_id)
    for start in range(0, len(source), BLOCK):
        writer.write(source[start : start + BLOCK])
    writer.flush(final=True)
    assert _stored(warehouse_url, execution_id) == source
    with get_engine(warehouse_url).connect() as connection:
        [match] = search_logs(connection, lines[-1].split()[3])
    assert match.line_number == len(lines)


MARKER = (
    "[timbel] truncated: log exceeded 10000 bytes; the rest is on the CI server at "
    "https://ci.example.com/job/shop/job/api/job/main/7/console"
)


@pytest.mark.timeout(30)
def test_a_log_over_the_cap_stores_the_cap_then_one_marker(warehouse_url: str) -> None:
    execution_id = _execution(warehouse_url)
    engine = get_engine(warehouse_url)
    url = "https://ci.example.com/job/shop/job/api/job/main/7/console"
    source = b"".join(f"step {n:05d} output\n".encode() for n in range(5000))  # 90 KB
    writer = LogWriter(
        engine, execution_id, chunk_bytes=4096, cap=LogCap(engine, execution_id, 10_000), url=url
    )
    returned = [writer.write(source[start : start + 1000]) for start in range(0, 30_000, 1000)]
    assert writer.complete and writer.stored == 10_000 and writer.buffered == 0
    assert MARKER in returned[10]  # the write that crossed the cap stored the marker
    assert all(text == "" for text in returned[11:])  # nothing more is taken
    assert writer.flush(final=True) == "" and writer.truncate() == ""

    # 10,000 bytes end part-way through a line: the marker starts a line of its own
    expected = source[:10_000] + b"\n" + MARKER.encode() + b"\n"
    assert _stored(warehouse_url, execution_id) == expected
    chunks = _chunks(warehouse_url, execution_id)
    assert [c for c in chunks if c[3] == 0] == [("", 10_000, 556, 0, "\n" + MARKER + "\n")]
    with engine.connect() as connection:
        state = connection.execute(
            select(ExecutionLog.size, ExecutionLog.lines, ExecutionLog.complete)
        ).one()
        [match] = search_logs(connection, "truncated")
    assert state == (10_000, 557, True)
    assert (match.line_number, match.line) == (557, MARKER)

    # the cap is the execution's: another stream, or a later follower, takes nothing more
    cap = LogCap(engine, execution_id, 10_000)
    assert cap.left == 0
    other = LogWriter(engine, execution_id, "123", cap=cap, url="https://gitlab.example/j/123")
    assert other.write(b"") == ""
    assert other.write(b"more\n").startswith("[timbel] truncated: log exceeded 10000 bytes;")
    assert other.stored == 0 and other.complete
    again = LogWriter(engine, execution_id, cap=LogCap(engine, execution_id, 10_000), url=url)
    assert again.complete and again.write(b"anything\n") == ""
    assert len(_chunks(warehouse_url, execution_id)) == len(chunks) + 1


def test_a_log_exactly_at_the_cap_is_whole(warehouse_url: str) -> None:
    execution_id = _execution(warehouse_url)
    engine = get_engine(warehouse_url)
    source = b"x" * 9_999 + b"\n"
    writer = LogWriter(engine, execution_id, cap=LogCap(engine, execution_id, len(source)))
    writer.write(source)
    writer.flush(final=True)
    assert writer.complete and _stored(warehouse_url, execution_id) == source
