"""`timbel metrics collect` says which hours it collected as people read them: the actual
start and end to the minute, with the end's date when it is another day."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.test_cli import invoke
from timbel_dagster.metrics_collect import window_text


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (_utc(2026, 12, 4, 23), _utc(2026, 12, 5, 0), "2026-12-04 23:00 to 2026-12-05 00:00 UTC"),
        (_utc(2026, 12, 5, 1), _utc(2026, 12, 5, 3), "2026-12-05 01:00 to 03:00 UTC"),
        (
            dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9))),
            _utc(2026, 12, 5, 1, 30),
            "2026-12-05 00:30 to 01:30 UTC",
        ),
    ],
)
def test_the_window_reads_to_the_minute(
    start: dt.datetime, end: dt.datetime, expected: str
) -> None:
    assert window_text(start, end) == expected


MOMENT = r"(\d{4}-\d\d-\d\d \d\d:\d\d) to (\d{4}-\d\d-\d\d \d\d:\d\d|\d\d:\d\d) UTC"


def test_one_hour_is_printed_from_its_start_to_its_end(tmp_path: Path) -> None:
    done = invoke(["metrics", "collect", "--hours", "1"], tmp_path, TIMBEL_SAMPLE_DATA="true")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    collecting = re.fullmatch(rf"Collecting 1 h \({MOMENT}\) of 3 cluster\(s\) from sample \.\.\.",
                              lines[0])  # fmt: skip
    assert collecting, lines[0]
    start = dt.datetime.fromisoformat(collecting[1])
    end_text = collecting[2] if len(collecting[2]) > 5 else f"{collecting[1][:10]} {collecting[2]}"
    assert dt.datetime.fromisoformat(end_text) - start == dt.timedelta(hours=1)
    assert max(len(line) for line in lines) <= 100
    summary = re.search(rf"^3 cluster\(s\), 1 h \({MOMENT}\) from sample: ", done.stdout, re.M)
    assert summary and summary.groups() == collecting.groups(), done.stdout
