"""Bulk upsert of executions and stages into PostgreSQL, against a naive ORM path.

Figures: rows/s of the real ingestion path (`store_executions` -> `bulk_upsert`) for 100,000
executions with 500,000 stages; rows/s of ORM `add()` + commit per row on 20,000 rows, in the
same run; the rows written and the table growth when the same batch is ingested again.
Targets (issue 2): >= 20,000 rows/s, >= 15x the naive path, re-ingest writes 0 rows and grows
the tables by under 2 %.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from benchmarks.common import report, scratch_postgres

STAGES = ("checkout", "build", "unit-tests", "integration-tests", "publish-image")


def make_executions(count: int, pipelines: int = 100) -> list:
    from timbel_dagster.records.delivery import ExecutionRecord, StageRecord

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    executions = []
    for n in range(count):
        began = start + dt.timedelta(minutes=7 * n)
        stages = tuple(
            StageRecord(
                external_id=f"{n}-{i}",
                name=name,
                position=i,
                status="failed" if (n % 11 == 0 and i == 3) else "success",
                started_at=began + dt.timedelta(minutes=2 * i),
                duration=60.0 + i + n % 7,
                parent_name="Tests" if "tests" in name else None,
                queue_seconds=1.5,
            )
            for i, name in enumerate(STAGES)
        )
        executions.append(
            ExecutionRecord(
                pipeline=f"service-{n % pipelines}/main",
                external_id=str(n // pipelines + 1),
                status="failed" if n % 11 == 0 else "success",
                triggered_by="bench",
                started_at=began,
                completed_at=began + dt.timedelta(minutes=10),
                duration=600.0,
                commit_sha=f"{n:040x}",
                branch="main",
                url=None,
                queue_seconds=3.0,
                artifacts={"image": f"svc:{n}"},
                stages=stages,
            )
        )
    return executions


def store_pipelines(url: str, pipelines: int = 100) -> None:
    from timbel_dagster.records.delivery import PipelineRecord
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.store.loaders import store_pipelines as store

    with get_engine(url).begin() as connection:
        store(
            connection,
            "bench",
            [
                PipelineRecord("jenkins", f"service-{i}/main", f"service-{i}", None, "main", None)
                for i in range(pipelines)
            ],
        )


def bulk(url: str, executions: list) -> tuple[float, int]:
    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.store.loaders import store_executions

    started = time.perf_counter()
    with get_engine(url).begin() as connection:
        result, stages = store_executions(connection, "bench", executions)
    return time.perf_counter() - started, result.written + stages.written


def naive(url: str, executions: list) -> float:
    """The path the bulk helper replaces: one ORM object and one commit per row."""
    from sqlalchemy.orm import Session

    from timbel_dagster.warehouse.engine import get_engine
    from timbel_dagster.warehouse.schema.models import PipelineExecution, StageExecution
    from timbel_dagster.warehouse.store.loaders import execution_id, pipeline_id

    started = time.perf_counter()
    with Session(get_engine(url)) as session:
        for e in executions:
            exec_id = execution_id("naive", e.pipeline, e.external_id)
            session.add(
                PipelineExecution(
                    id=exec_id,
                    source="naive",
                    pipeline_id=pipeline_id("bench", e.pipeline),
                    external_id=e.external_id,
                    triggered_by=e.triggered_by,
                    status=e.status,
                    started_at=e.started_at,
                    completed_at=e.completed_at,
                    duration=e.duration,
                    queue_seconds=e.queue_seconds,
                    artifacts=e.artifacts,
                    url=e.url,
                    commit_sha=e.commit_sha,
                    branch=e.branch,
                )
            )
            session.commit()
            for s in e.stages:
                session.add(
                    StageExecution(
                        id=execution_id("naive-stage", str(exec_id), s.external_id),
                        execution_id=exec_id,
                        external_id=s.external_id,
                        name=s.name,
                        parent_name=s.parent_name,
                        position=s.position,
                        status=s.status,
                        started_at=s.started_at,
                        duration=s.duration,
                        queue_seconds=s.queue_seconds,
                        attempt=s.attempt,
                    )
                )
                session.commit()
    return time.perf_counter() - started


def table_bytes(url: str) -> int:
    from sqlalchemy import text

    from timbel_dagster.warehouse.engine import get_engine

    with get_engine(url).connect() as connection:
        return connection.execute(
            text(
                "SELECT pg_total_relation_size('pipeline_executions')"
                " + pg_total_relation_size('stage_executions')"
            )
        ).scalar_one()


def main(executions: int = 100_000, naive_rows: int = 20_000) -> None:
    from timbel_dagster.warehouse import migrate

    rows_per_execution = 1 + len(STAGES)
    batch = make_executions(executions)
    with scratch_postgres() as url:
        migrate.upgrade(url)
        store_pipelines(url)
        naive_batch = batch[: naive_rows // rows_per_execution]
        naive_seconds = naive(url, naive_batch)
        naive_rate = len(naive_batch) * rows_per_execution / naive_seconds

        seconds, written = bulk(url, batch)
        rate = executions * rows_per_execution / seconds
        report("upsert_naive_orm_rows_per_s", naive_rate, "rows/s")
        report("upsert_bulk_rows_per_s", rate, "rows/s", rate / naive_rate, "naive ORM")
        report("upsert_bulk_seconds", seconds, f"s for {written:,} rows")

        size_before = table_bytes(url)
        again_seconds, again_written = bulk(url, batch)
        growth = (table_bytes(url) - size_before) / size_before * 100
        report("reingest_rows_written", again_written, "rows")
        report("reingest_table_growth", growth, "%")
        report(
            "reingest_rows_per_s",
            executions * rows_per_execution / again_seconds,
            "rows/s",
            seconds / again_seconds,
            "first ingest time",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    arguments = parser.parse_args()
    main(arguments.executions, arguments.naive_rows)
