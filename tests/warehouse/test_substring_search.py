"""Substring search of logs and error messages (`ILIKE '%text%'`, served by the trigram
indexes of migration 0021 on PostgreSQL): `%`, `_` and `\\` in the text match themselves,
case does not matter, and text shorter than 3 characters is refused on both backends."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.read.log_search import search_logs
from timbel_dagster.warehouse.read.queries import ExecutionFilter, list_executions
from timbel_dagster.warehouse.read.substring import like_pattern
from timbel_dagster.warehouse.schema.models import (
    ExecutionLog,
    ExecutionLogChunk,
    Pipeline,
    PipelineExecution,
)

# Per execution: its log's lines and its error message. Each pair differs by what a LIKE
# wildcard or escape would blur: `50%` / `50x`, `a_b` / `aXb`, `C:\out` / `C:out`.
EXECUTIONS = {
    "1": (["progress 50% done", "step ok"], None),
    "2": (["rate 50x faster", "step ok"], None),
    "3": (["wrote file_name.txt"], None),
    "4": (["wrote fileXname.txt"], None),
    "5": (["copied to C:\\build\\out", "DONE"], None),
    "6": (["copied to C:buildout"], None),
    "7": (["Container OOMKilled by the kernel"], "exit 137: OOMKilled"),
    "8": (["nothing here"], "gate failed: coverage 79% < 80%_min"),
    "9": (["nothing here"], "script C:\\ci\\run.ps1 exited 1"),
}
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
# No word of these is a token of the logs: full-text search finds nothing on PostgreSQL.
SUBSTRING_EVERYWHERE = {"0% d", "e_na", "d\\ou", "oomkill", "OOMKILL", "oOmKiLl"}

# On PostgreSQL full-text search answers those made of whole words (`50%`: the word `50`),
# the substring match the others (`oomkill`: inside the token `oomkilled`); the lines found
# are the same either way.
PATTERNS = [
    "0% d",
    "50%",
    "50x",
    "e_na",
    "eXna",
    "C:\\b",
    "\\out",
    "d\\ou",
    "oomkill",
    "OOMKILL",
    "oOmKiLl",
    "% < 80%_",
    "\\ci\\",
    "%%%",
    "___",
    "\\\\\\",
    "%% d",
]


@pytest.fixture
def logged(warehouse_url: str) -> str:
    pipeline_id = uuid.uuid4()
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(
            Pipeline.__table__.insert().values(
                id=pipeline_id, source="jenkins", ci_system="jenkins", name="shop/api/main"
            )
        )
        for number, (lines, error) in EXECUTIONS.items():
            ident = uuid.uuid5(pipeline_id, number)
            connection.execute(
                PipelineExecution.__table__.insert().values(
                    id=ident, source="jenkins", pipeline_id=pipeline_id, external_id=number,
                    status="failed" if error else "success", error_message=error,
                    started_at=T0 + dt.timedelta(minutes=int(number)),
                )
            )  # fmt: skip
            content = "".join(f"{line}\n" for line in lines)
            connection.execute(
                ExecutionLog.__table__.insert().values(
                    execution_id=ident, stream="", size=len(content), lines=len(lines),
                    complete=True, updated_at=T0,
                )
            )  # fmt: skip
            connection.execute(
                ExecutionLogChunk.__table__.insert().values(
                    execution_id=ident, stream="", start_offset=0, first_line=1,
                    length=len(content), content=content,
                )
            )  # fmt: skip
    return warehouse_url


def _lines_holding(pattern: str) -> list[tuple[str, int, str]]:
    """What the search returned before escaping, and must still: every line holding the
    pattern, case-insensitively, newest execution first."""
    return [
        (number, index, line)
        for number, (lines, _error) in sorted(EXECUTIONS.items(), reverse=True)
        for index, line in enumerate(lines, start=1)
        if pattern.lower() in line.lower()
    ]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_log_search_finds_exactly_the_lines_holding_the_text(logged: str, pattern: str) -> None:
    with get_engine(logged).connect() as connection:
        found = search_logs(connection, pattern)
    assert [(m.external_id, m.line_number, m.line) for m in found] == _lines_holding(pattern)
    if pattern in SUBSTRING_EVERYWHERE:
        assert found and {m.how for m in found} == {"substring"}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_an_execution_search_finds_exactly_the_logs_and_errors_holding_the_text(
    logged: str, pattern: str
) -> None:
    expected = [
        number
        for number, (lines, error) in sorted(EXECUTIONS.items(), reverse=True)
        if any(pattern.lower() in text.lower() for text in [*lines, error or ""])
    ]
    with get_engine(logged).connect() as connection:
        rows = list_executions(connection, ExecutionFilter(search=pattern))
    assert [row["external_id"] for row in rows] == expected


def test_the_wildcards_no_longer_match_anything(logged: str) -> None:
    """Before the escaping, `50%` found `50x` too and `e_na` found `eXna`: the execution
    filter took them as LIKE wildcards."""
    with get_engine(logged).connect() as connection:
        ids = {
            pattern: [
                row["external_id"]
                for row in list_executions(connection, ExecutionFilter(search=pattern))
            ]
            for pattern in ("50%", "e_na", "C:\\b", "80%_")
        }
    assert ids == {"50%": ["1"], "e_na": ["3"], "C:\\b": ["5"], "80%_": ["8"]}


@pytest.mark.parametrize("pattern", ["ab", " x ", "%", "_\n"])
def test_text_shorter_than_three_characters_is_refused(logged: str, pattern: str) -> None:
    with (
        get_engine(logged).connect() as connection,
        pytest.raises(ValueError, match="at least 3 characters"),
    ):
        search_logs(connection, pattern)
    with pytest.raises(ValueError, match="at least 3 characters"):
        ExecutionFilter(search=pattern)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("50%", "%50\\%%"), ("a_b", "%a\\_b%"), ("C:\\x", "%C:\\\\x%"), ("plain", "%plain%")],
)
def test_like_pattern_escapes_the_wildcards_and_the_escape(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern
