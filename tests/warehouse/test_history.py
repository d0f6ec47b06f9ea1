from __future__ import annotations

import datetime as dt
import uuid

import pytest

from timbel_dagster.warehouse.read.history import (
    add_stage_offsets,
    duration_percentiles,
    percentile,
)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([10.0], 50, 10.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 90, 3.7),
        (list(map(float, range(1, 101))), 99, 99.01),
        ([5.0, 5.0], 99, 5.0),
    ],
)
def test_percentile_matches_percentile_cont(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == pytest.approx(expected)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_duration_percentiles_per_pipeline(warehouse_url: str, sample_source) -> None:
    from timbel_dagster.assets.ingestion import ingest_ci
    from timbel_dagster.warehouse.engine import get_engine

    since, until = sample_source.window
    with get_engine(warehouse_url).begin() as connection:
        ingest_ci(connection, sample_source, since, until)
    with get_engine(warehouse_url).connect() as connection:
        rows = duration_percentiles(connection)
        only = duration_percentiles(connection, ["payments-api/main"])
    assert len(rows) == 12
    [payments] = only
    assert payments["p50_seconds"] < payments["p90_seconds"] <= payments["p99_seconds"]
    durations = sorted(
        e.duration
        for e in sample_source.history.executions
        if e.pipeline == "payments-api/main" and e.duration is not None
    )
    assert payments["p90_seconds"] == pytest.approx(percentile(durations, 90), abs=0.1)
    assert payments["executions"] == len(durations)


def test_each_stage_gets_its_offset_from_the_start_of_the_execution() -> None:
    start = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    execution = {
        "started_at": start,
        "stages": [
            {"id": str(uuid.uuid4()), "started_at": start},
            {"id": str(uuid.uuid4()), "started_at": start + dt.timedelta(seconds=100.04)},
            {"id": str(uuid.uuid4()), "started_at": None},  # never started
        ],
    }
    add_stage_offsets(execution)
    assert [s["offset_seconds"] for s in execution["stages"]] == [0.0, 100.0, None]


def test_log_tail_reads_the_end_of_the_last_stream(warehouse_url: str, sample_source) -> None:
    from timbel_dagster.assets.ingestion import ingest_ci
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.store.loaders import execution_id
    from timbel_dagster.warehouse.store.logs import LogWriter, log_tail, read_log

    since, until = sample_source.window
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        ingest_ci(connection, sample_source, since, until)
    first = sample_source.history.executions[0]
    ident = execution_id("sample", first.pipeline, first.external_id)
    for stream, lines in (("100", 300), ("200", 500)):
        writer = LogWriter(engine, ident, stream, chunk_bytes=1000)
        for n in range(lines):
            writer.write(f"{stream} line {n}\n".encode())
        writer.flush(final=True)
    with engine.connect() as connection:
        whole = "".join(read_log(connection, ident))
        assert log_tail(connection, ident, 5000) == whole[-5000:]
        assert log_tail(connection, ident, 10**9) == whole
