"""The SQL of the API's list and search routes reads the big tables through indexes: on
50,000 executions (2 stages each, a log chunk for every 5th), VACUUM ANALYZEd and with the
planner's defaults (no `enable_seqscan = off`), no plan has a Seq Scan of
pipeline_executions, stage_executions, execution_log_chunks or vulnerability_findings (10,000
findings of 1,000 images, the security routes' tenant scope included), and substring search
reads the trigram indexes of migration 0021. The same check as
`python -m benchmarks.api_explain` on 1,000,000."""

from __future__ import annotations

import pytest

from benchmarks.api_explain import BIG_TABLES, GATE_TABLES, load, plans
from tests.conftest import scratch_postgres_database
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine

# One worker loads the module's big warehouse, not each (tests/conftest.py).
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("api_read_plans")]


@pytest.fixture(scope="module")
def route_plans():
    with scratch_postgres_database("api_plans") as url:
        migrate.upgrade(url)
        engine = get_engine(url)
        load(engine, 50_000)
        try:
            yield plans(engine)
        finally:
            engine.dispose()


def test_every_list_and_search_route_is_measured(route_plans) -> None:
    assert {"executions_first_page", "executions_deep_page", "executions_tenant_member",
            "logs_search", "logs_search_next_page", "logs_search_tenant_member",
            "logs_search_substring", "executions_search",
            "execution_stages", "execution_log", "pipelines_first_page",
            "rollbacks", "security_findings", "security_findings_tenant_member",
            "security_image_findings_tenant_member", "security_finding_tenant_member",
            "security_image_of_another_tenant"} <= set(route_plans)  # fmt: skip
    assert all(statements for statements in route_plans.values())


def test_no_route_scans_a_big_table_sequentially(route_plans) -> None:
    scanned = {
        name: plan["seq_scans"]
        for name, statements in route_plans.items()
        for plan in statements
        if plan["seq_scans"]
    }
    assert scanned == {}, f"sequential scans of {BIG_TABLES}: {scanned}"


def test_the_big_tables_are_read_through_an_index(route_plans) -> None:
    for name in ("executions_first_page", "executions_deep_page", "execution_log"):
        [plan] = route_plans[name]
        assert "Index Scan" in plan["nodes"] or "Index Only Scan" in plan["nodes"], name
    [search] = route_plans["logs_search"]
    assert "Bitmap Index Scan" in search["nodes"]  # the GIN index of the chunks' words


def test_the_tenant_scoped_findings_read_the_findings_through_an_index(route_plans) -> None:
    # The scope is an EXISTS per finding: the page walks the primary key, it never sorts.
    for name in ("security_findings_tenant_member", "security_finding_tenant_member"):
        [plan] = route_plans[name]
        assert "Index Scan" in plan["nodes"] and "Sort" not in plan["nodes"], (name, plan)


TRIGRAM = "ix_execution_log_chunks_content_trgm"


def test_a_substring_search_reads_the_trigram_index(route_plans) -> None:
    """A pattern full-text search cannot find (`kill`, inside `oomkilled`) falls back to
    `ILIKE '%kill%'`: a Bitmap Index Scan of migration 0021's trigram index, not a read of
    every chunk."""
    words, *substring = route_plans["logs_search_substring"]
    assert "ix_execution_log_chunks_fts" in words["indexes"]
    assert substring, "the search did not fall back to a substring match"
    for plan in substring:
        assert "Bitmap Index Scan" in plan["nodes"] and TRIGRAM in plan["indexes"], plan
        assert plan["seq_scans"] == []


def test_the_execution_search_reads_both_trigram_indexes(route_plans) -> None:
    [plan] = route_plans["executions_search"]
    assert "Bitmap Index Scan" in plan["nodes"], plan
    assert {TRIGRAM, "ix_pipeline_executions_error_message_trgm"} <= set(plan["indexes"]), plan


def test_the_gate_finds_one_images_scan_through_indexes(route_plans) -> None:
    """By tag (resolved through registry_images), by digest, and by a tag nothing lists
    (matched by the scanner's name): no statement reads scan_results or registry_images
    whole (migration 0023; before it each was a Seq Scan)."""
    for name in ("security_gate_by_tag", "security_gate_by_digest", "security_gate_unknown_tag"):
        assert route_plans[name], name
        for plan in route_plans[name]:
            assert not set(plan["tables_scanned"]) & set(GATE_TABLES), (name, plan)
