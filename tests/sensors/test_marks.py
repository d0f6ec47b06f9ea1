from __future__ import annotations

import datetime as dt

import pytest

from timbel_dagster.sensors.marks import BuildCursor, Pending, StoredMark, confirm, plan

NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def test_cursor_round_trips_through_json() -> None:
    cursor = BuildCursor({"a": 3}, {"a": "2026-11-19"}, Pending("k", {"a": 5}, NOW.isoformat()), 4)
    assert BuildCursor.from_json(cursor.to_json()) == cursor
    assert BuildCursor.from_json(None) == BuildCursor()


@pytest.mark.parametrize(
    ("marks", "latest", "expected_new", "first_day"),
    [
        ({}, {"a": 10}, {"a": 10}, "2026-11-18"),  # unseen: initial_days back
        ({"a": 10}, {"a": 12, "b": 3}, {"a": 12, "b": 3}, "2026-11-18"),
        ({"a": 10, "b": 3}, {"a": 10, "b": 3}, {}, None),
    ],
)
def test_plan_batches_every_pipeline_above_its_mark(
    marks: dict, latest: dict, expected_new: dict, first_day: str | None
) -> None:
    decision = plan("jenkins", latest, BuildCursor(dict(marks)), NOW)
    if not expected_new:
        assert decision.run_key is None
        assert decision.skip_reason == "no new jenkins builds in 2 pipelines"
        return
    assert decision.cursor.pending is not None
    assert decision.cursor.pending.upto == expected_new
    assert decision.days == (first_day, "2026-11-20")
    assert decision.run_key.startswith("jenkins-builds-1-")


def test_batch_reads_from_the_day_of_the_oldest_mark_but_not_too_far() -> None:
    cursor = BuildCursor({"a": 5, "b": 9}, {"a": "2026-11-19", "b": "2026-11-01"})
    decision = plan("gitlab", {"a": 6, "b": 10}, cursor, NOW, max_days=7)
    assert decision.days == ("2026-11-13", "2026-11-20")


def test_same_range_after_a_failure_gets_a_new_run_key() -> None:
    cursor = BuildCursor({"a": 5})
    first = plan("jenkins", {"a": 8}, cursor, NOW)
    confirm(first.cursor, {})  # the run stored nothing
    second = plan("jenkins", {"a": 8}, first.cursor, NOW)
    assert first.run_key != second.run_key
    assert second.cursor.marks == {"a": 5}


def test_confirm_moves_marks_only_as_far_as_stored() -> None:
    cursor = BuildCursor({"a": 5, "b": 1}, {}, Pending("k", {"a": 9, "b": 4, "c": 2}, ""))
    moved = confirm(cursor, {"a": StoredMark(7, "2026-11-20"), "c": StoredMark(2, None)})
    assert moved == {"a": 7, "c": 2}
    assert cursor.marks == {"a": 7, "b": 1, "c": 2}
    assert cursor.days == {"a": "2026-11-20"}
    assert cursor.pending is None
