"""Migration 0027: the reads that select executions by completion time find them through an
index. On 100,000 executions (one every 5 minutes for 347 days, 100 pipelines of 20
services), VACUUM ANALYZEd, planner defaults: an SLO's warehouse SLI (`slo/counts.py`,
executions of one service's pipelines finished in the last 30 days) reads the
`(pipeline_id, completed_at)` index, not every execution of the service's pipelines through
`(pipeline_id, started_at)`; the `pipeline_failure_rate` fact (executions of any pipeline
finished in the last hour) reads `(completed_at)`, not the whole table."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from benchmarks.api_explain import explain
from tests.conftest import scratch_postgres_database
from timbel_dagster.notify.facts import pipeline_failure_rate
from timbel_dagster.slo.counts import warehouse_counts
from timbel_dagster.slo.spec import parse_slos
from timbel_dagster.slo.status import windows_of
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("execution_completion_plans")]

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
EXECUTIONS, PIPELINES, SERVICES = 100_000, 500, 100
_LOAD = [
    f"""INSERT INTO pipelines (id, source, ci_system, name, service, created_at, updated_at)
        SELECT md5('p' || p)::uuid, 'gitlab', 'gitlab', 'group/app-' || p,
               'svc-' || (p % {SERVICES}), now(), now()
        FROM generate_series(0, {PIPELINES - 1}) p""",
    f"""INSERT INTO pipeline_executions (id, source, pipeline_id, external_id, sequence,
               status, started_at, completed_at, duration, created_at, updated_at)
        SELECT md5('e' || g)::uuid, 'gitlab', md5('p' || (g % {PIPELINES}))::uuid, g::text, g,
               (ARRAY['success','success','success','failed','aborted'])[g % 5 + 1],
               :t0 - make_interval(mins => 5 * g),
               :t0 - make_interval(mins => 5 * g) + make_interval(secs => 60 + g % 900),
               60 + g % 900, now(), now()
        FROM generate_series(1, {EXECUTIONS}) g""",
]
SLO = "slos: [{service: svc-3, name: success, objective: 99, sli: {kind: pipeline_success}}]"


@pytest.fixture(scope="module")
def engine():
    with scratch_postgres_database("completion_plans") as url:
        migrate.upgrade(url)
        engine = get_engine(url)
        with engine.begin() as connection:
            for statement in _LOAD:
                connection.execute(text(statement), {"t0": T0})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE pipelines, pipeline_executions"))
        try:
            yield engine
        finally:
            engine.dispose()


def test_an_slo_sli_reads_the_service_pipelines_executions_by_completion(engine) -> None:
    [slo] = parse_slos(SLO, "slos.yaml")
    with engine.connect() as connection:
        [plan] = explain(connection, lambda c: warehouse_counts(c, slo, windows_of(slo), T0))
    assert "ix_pipeline_executions_pipeline_id_completed_at" in plan["indexes"], plan
    assert plan["seq_scans"] == [], plan


def test_the_failure_rate_fact_reads_the_last_hours_completions(engine) -> None:
    with engine.connect() as connection:
        [plan] = explain(connection, lambda c: pipeline_failure_rate(c, {}, T0))
    assert "ix_pipeline_executions_completed_at" in plan["indexes"], plan
    assert plan["seq_scans"] == [], plan
