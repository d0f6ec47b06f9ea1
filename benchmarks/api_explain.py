"""The API's list and search routes on 1,000,000 executions: EXPLAIN shows no sequential scan.

Loads 1,000,000 executions (2 stages each, a log chunk for every 5th; 500 pipelines of 100
services in 10 tenants) with `generate_series` into a throw-away PostgreSQL database named
`timbel_bench_api` (created and dropped), runs `VACUUM ANALYZE`, then captures the SQL each
list and search route issues by calling the same warehouse functions the routes call, with
the arguments the routes pass (a page of 50 plus one; a tenant member's scope; a deep cursor
page; a substring that full-text search cannot find; `executions list --search`) and
prints, per route, the plan's node types and the execution time of `EXPLAIN (ANALYZE,
FORMAT JSON)`. It fails if any plan reads pipeline_executions, stage_executions,
execution_log_chunks or vulnerability_findings with a Seq Scan. Then it builds the trigram
indexes of migration 0021 again on the loaded tables, timed, and prints their sizes.

Also one image per 50 executions, each with a scan, 10 open findings, a registry tag and a
deployment of one service (every third also asked for by a request, by digest): the
security routes' tenant scope (an EXISTS per finding) is measured on them.

    python -m benchmarks.api_explain [--executions N] [--database NAME]

`tests/warehouse/test_api_read_plans.py` runs the same on 50,000 executions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url

from benchmarks.common import DEFAULT_SERVER, report

# vulnerability_findings: ten per image. The security scope's EXISTS subqueries read
# scan_results, registry_images, deployments and deployment_requests (one row per image or
# fewer) through their indexes per finding, or, where the planner finds it cheaper, hash
# them once per statement. The gate's lookups of one image (`security_gate_*`) must read
# scan_results and registry_images through an index (migration 0023).
BIG_TABLES = ("pipeline_executions", "stage_executions", "execution_log_chunks",
              "vulnerability_findings")  # fmt: skip
GATE_TABLES = ("scan_results", "registry_images")
DATABASE = "timbel_bench_api"
PIPELINES, SERVICES, TENANTS = 500, 100, 10
# A word in about 1 of 100 stored chunks, of every tenant: what a search for an error
# message finds. (A pattern full-text search finds nowhere falls back to a substring scan,
# which reads every chunk: see docs/api.md.)
RARE_WORD = "oomkilled"
# Part of that word and no word of its own: full-text search finds nothing, so the search
# falls back to a substring match (`ILIKE '%kill%'`), as for `java.lang.OutOfMemoryError`.
SUBSTRING = "kill"
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

_LOAD = [
    "INSERT INTO teams (name, created_at) VALUES ('platform', now())",
    f"""INSERT INTO service_owners (service, team, tenant)
        SELECT 'svc-' || s, 'platform', 't' || (s % {TENANTS})
        FROM generate_series(0, {SERVICES - 1}) s""",
    f"""INSERT INTO pipelines (id, source, ci_system, name, service, created_at, updated_at)
        SELECT md5('p' || p)::uuid, 'gitlab', 'gitlab', 'group-' || (p % 20) || '/app-' || p,
               'svc-' || (p % {SERVICES}), now(), now()
        FROM generate_series(0, {PIPELINES - 1}) p""",
    # started_at: one a minute back from T0; every 1,000th not started yet; five in a row
    # of one pipeline, so the logged ones (every 5th) are of every pipeline and tenant
    f"""INSERT INTO pipeline_executions (id, source, pipeline_id, external_id, sequence,
               status, started_at, completed_at, duration, created_at, updated_at)
        SELECT md5('e' || g)::uuid, 'gitlab', md5('p' || (g / 5 % {PIPELINES}))::uuid, g::text,
               g, (ARRAY['success','success','success','failed','aborted','running'])[g % 6 + 1],
               CASE WHEN g % 1000 = 0 THEN NULL
                    ELSE :t0 - make_interval(mins => g) END,
               CASE WHEN g % 1000 = 0 THEN NULL
                    ELSE :t0 - make_interval(mins => g) + make_interval(secs => 60 + g % 900) END,
               60 + g % 900, now(), now()
        FROM generate_series(1, :n) g""",
    """INSERT INTO stage_executions (id, execution_id, external_id, name, position, status,
               started_at, duration, attempt, created_at, updated_at)
        SELECT md5('s' || g || '-' || k)::uuid, md5('e' || g)::uuid, k::text,
               (ARRAY['build','test'])[k], k, 'success', :t0 - make_interval(mins => g), 30, 1,
               now(), now()
        FROM generate_series(1, :n) g, generate_series(1, 2) k""",
    """INSERT INTO execution_logs (execution_id, stream, size, lines, complete, updated_at)
        SELECT md5('e' || g)::uuid, '', 2000, 40, true, now()
        FROM generate_series(5, :n, 5) g""",
    f"""INSERT INTO execution_log_chunks (execution_id, stream, start_offset, first_line,
               length, content)
        SELECT md5('e' || g)::uuid, '', 0, 1, 2000,
               repeat('step ' || g || ' compiling module ok' || chr(10), 20)
               || CASE WHEN g % 485 = 0 THEN 'error: container {RARE_WORD} exit 137' || chr(10)
                       ELSE '' END
        FROM generate_series(5, :n, 5) g""",
    # Images: `i` of n/50, its digest md5-based, tag `1.0` of repository `team/img-i`.
    """INSERT INTO registry_images (id, source, registry, repository, tag, digest, media_type,
               first_seen, last_seen)
        SELECT md5('r' || i)::uuid, 'bench', 'registry.example.com', 'team/img-' || i, '1.0',
               'sha256:' || md5('d' || i) || md5('d' || i), 'm', :t0, :t0
        FROM generate_series(1, :n / 50) i""",
    """INSERT INTO scan_results (id, source, scanner, artifact_name, artifact_type,
               artifact_digest, artifact_key, scanned_at, n_results, n_critical, n_high,
               n_medium, n_low, n_unknown, n_misconfigurations, n_secrets, status, created_at,
               updated_at)
        SELECT md5('s' || i)::uuid, 'bench', 'trivy',
               'registry.example.com/team/img-' || i || '\\:1.0', 'container_image',
               'sha256:' || md5('d' || i) || md5('d' || i),
               'sha256:' || md5('d' || i) || md5('d' || i), :t0, 10, 10, 0, 0, 0, 0, 0, 0,
               'findings', now(), now()
        FROM generate_series(1, :n / 50) i""",
    """INSERT INTO vulnerability_findings (id, source, artifact_key, artifact_name, target,
               severity, first_seen, last_seen, last_scan_id, vulnerability_id, pkg_name,
               installed_version, created_at, updated_at)
        SELECT md5('f' || i || '-' || k)::uuid, 'bench',
               'sha256:' || md5('d' || i) || md5('d' || i),
               'registry.example.com/team/img-' || i || '\\:1.0', 'debian 12', 'CRITICAL', :t0,
               :t0, md5('s' || i)::uuid, 'CVE-2026-' || k, 'pkg-' || k, '1.0', now(), now()
        FROM generate_series(1, :n / 50) i, generate_series(1, 10) k""",
    f"""INSERT INTO deployments (id, source, external_id, service, environment, image, kind,
               status, started_at, created_at, updated_at)
        SELECT md5('dep' || i)::uuid, 'bench', i::text, 'svc-' || (i % {SERVICES}), 'prod',
               'registry.example.com/team/img-' || i || '\\:1.0', 'release', 'success',
               :t0 - make_interval(mins => i), now(), now()
        FROM generate_series(1, :n / 50) i""",
    f"""INSERT INTO deployment_requests (id, number, service, image, environment_group, reason,
               requested_by, status, expires_at, fast_track, created_at, updated_at)
        SELECT md5('req' || i)::uuid, i, 'svc-' || ((i + 1) % {SERVICES}),
               'registry.example.com/team/img-' || i || '@sha256:' || md5('d' || i)
                   || md5('d' || i), 'prod', 'r', 'dev', 'deployed', :t0, false, now(), now()
        FROM generate_series(3, :n / 50, 3) i""",
]


def load(engine: Engine, executions: int) -> list[float]:
    """The warehouse (migrated already) filled with `executions` executions; ANALYZEd. The
    seconds each statement of the load took."""
    seconds = []
    with engine.begin() as connection:
        for statement in _LOAD:
            started = time.perf_counter()
            connection.execute(text(statement), {"n": executions, "t0": T0})
            seconds.append(time.perf_counter() - started)
    # VACUUM as well: it moves the rows GIN indexes hold in their pending list (up to 4 MB
    # each, `gin_pending_list_limit`) into the index proper, as autovacuum does in a live
    # warehouse; a freshly bulk-loaded one has full pending lists, which every GIN scan
    # reads and the planner counts.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return seconds


# The trigram indexes of migration 0021, built again on the loaded tables as the migration
# builds them on an existing warehouse: writes to the table wait that long.
_TRIGRAM = (
    ("ix_execution_log_chunks_content_trgm", "execution_log_chunks", "content"),
    ("ix_pipeline_executions_error_message_trgm", "pipeline_executions", "error_message"),
)


def trigram_indexes(engine: Engine) -> Iterator[tuple[str, float, int, int]]:
    """Per trigram index present: its name, the seconds a plain `CREATE INDEX` of it takes
    on the loaded table, and its size in bytes before and after that build."""
    size = "SELECT pg_relation_size(to_regclass(:name))"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for name, table, column in _TRIGRAM:
            loaded = connection.execute(text(size), {"name": name}).scalar()
            if loaded is None:
                continue
            connection.execute(text(f"DROP INDEX {name}"))
            started = time.perf_counter()
            connection.execute(
                text(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)")
            )
            seconds = time.perf_counter() - started
            yield name, seconds, loaded, connection.execute(text(size), {"name": name}).scalar()


@contextmanager
def _captured(connection: Connection) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:
        statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", keep)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def explain(connection: Connection, call: Callable[[Connection], Any]) -> list[dict[str, Any]]:
    """Run `call` (a warehouse read), then EXPLAIN ANALYZE each statement it issued; per
    statement: its node types, the indexes it reads, the big tables it scans sequentially
    and its time in ms."""
    with _captured(connection) as statements:
        call(connection)
    plans = []
    for statement, parameters in statements:
        [[document]] = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        ).all()
        root = document[0]
        nodes = list(_nodes(root["Plan"]))
        plans.append(
            {
                "nodes": sorted({node["Node Type"] for node in nodes}),
                "indexes": sorted({node["Index Name"] for node in nodes if "Index Name" in node}),
                "seq_scans": sorted(
                    {
                        node.get("Relation Name", "?")
                        for node in nodes
                        if node["Node Type"] == "Seq Scan"
                        and node.get("Relation Name") in BIG_TABLES
                    }
                ),
                "tables_scanned": sorted(
                    {
                        node.get("Relation Name", "?")
                        for node in nodes
                        if node["Node Type"] == "Seq Scan"
                    }
                ),
                "ms": root["Execution Time"],
            }
        )
    return plans


def route_calls(connection: Connection) -> dict[str, Callable[[Connection], Any]]:
    """Per list or search route, the warehouse call it makes, with the route's arguments."""
    from timbel_dagster.security.findings_page import finding, image_visible, open_findings
    from timbel_dagster.security.policy import check_image
    from timbel_dagster.warehouse.audit.chain import search_events
    from timbel_dagster.warehouse.read.history import duration_percentiles, execution_detail
    from timbel_dagster.warehouse.read.log_search import SearchAfter, search_logs
    from timbel_dagster.warehouse.read.pipelines import list_pipelines
    from timbel_dagster.warehouse.read.queries import (
        ExecutionFilter,
        execution_stages,
        execution_tenant,
        list_executions,
    )
    from timbel_dagster.warehouse.read.rollbacks import list_rollbacks
    from timbel_dagster.warehouse.store.logs import log_chunks

    # A deep page: the cursor of a row 90 % down the list (found once, not measured).
    deep = connection.execute(
        text(
            "SELECT started_at, id FROM pipeline_executions WHERE started_at IS NOT NULL "
            "ORDER BY started_at DESC, id DESC OFFSET :skip LIMIT 1"
        ),
        {
            "skip": int(
                connection.execute(text("SELECT count(*) FROM pipeline_executions")).scalar_one()
                * 0.9
            )
        },
    ).one()
    logged = connection.execute(
        text("SELECT execution_id FROM execution_log_chunks ORDER BY execution_id LIMIT 1")
    ).scalar_one()
    pipeline = connection.execute(text("SELECT id FROM pipelines LIMIT 1")).scalar_one()
    hit = search_logs(connection, RARE_WORD, limit=51)
    search_deep = SearchAfter.of(hit[-1]) if hit else None
    tenant = ("t1",)
    # An image of t1 (svc-1 deployed img-1) and a finding of it; img-2 is svc-2's (t2).
    image = "registry.example.com/team/img-1:1.0"
    other = "registry.example.com/team/img-2:1.0"
    found = connection.execute(
        text("SELECT id FROM vulnerability_findings WHERE artifact_name = :a LIMIT 1"),
        {"a": image},
    ).scalar_one()
    digest = connection.execute(
        text("SELECT artifact_digest FROM scan_results WHERE artifact_name = :a"), {"a": image}
    ).scalar_one()
    digest_ref = f"registry.example.com/team/img-1@{digest}"
    # A tag no registry listing knows: matched by the name the scanner recorded.
    unknown = "registry.example.com/team/img-1:never-listed"
    return {
        "executions_first_page": lambda c: list_executions(c, ExecutionFilter(limit=51)),
        "executions_deep_page": lambda c: list_executions(
            c, ExecutionFilter(limit=51, after=(deep[0], deep[1]))
        ),
        "executions_tenant_member": lambda c: list_executions(
            c, ExecutionFilter(limit=51, tenants=tenant)
        ),
        "executions_tenant_deep_page": lambda c: list_executions(
            c, ExecutionFilter(limit=51, tenants=tenant, after=(deep[0], deep[1]))
        ),
        "executions_failed": lambda c: list_executions(
            c, ExecutionFilter(limit=51, status="failed")
        ),
        "execution_detail": lambda c: (
            execution_tenant(c, logged),
            execution_detail(c, str(logged)),
        ),
        "execution_detail_by_prefix": lambda c: execution_detail(c, str(logged)[:8]),
        "execution_stages": lambda c: execution_stages(c, logged),
        "execution_log": lambda c: log_chunks(c, logged, None, 11),
        "logs_search": lambda c: search_logs(c, RARE_WORD, limit=51),
        "logs_search_tenant_member": lambda c: search_logs(c, RARE_WORD, limit=51, tenants=tenant),
        "logs_search_next_page": lambda c: search_logs(c, RARE_WORD, limit=51, after=search_deep),
        "logs_search_substring": lambda c: search_logs(c, SUBSTRING, limit=51),
        "executions_search": lambda c: list_executions(
            c, ExecutionFilter(limit=51, search=SUBSTRING)
        ),
        "pipelines_first_page": lambda c: list_pipelines(c, None, 51, tenant),
        "pipeline_stats": lambda c: duration_percentiles(c, pipeline_ids=[pipeline]),
        "audit_events": lambda c: search_events(c, limit=101, before_id=1_000_000),
        "rollbacks": lambda c: list_rollbacks(c, None, 51, tenant),
        "security_findings": lambda c: open_findings(c, limit=101),
        "security_findings_tenant_member": lambda c: open_findings(c, limit=101, tenants=tenant),
        "security_image_findings_tenant_member": lambda c: open_findings(
            c, image, limit=101, tenants=tenant
        ),
        "security_finding_tenant_member": lambda c: finding(c, found, tenant),
        "security_image_of_another_tenant": lambda c: image_visible(c, other, tenant),
        "security_gate_by_tag": lambda c: check_image(c, image, "prod"),
        "security_gate_by_digest": lambda c: check_image(c, digest_ref, "prod"),
        "security_gate_unknown_tag": lambda c: check_image(c, unknown, "prod"),
    }


def plans(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Each route's statements' plans (see `explain`)."""
    with engine.connect() as connection:
        calls = route_calls(connection)
        return {name: explain(connection, call) for name, call in calls.items()}


@contextmanager
def bench_database(server_url: str, database: str = DATABASE) -> Iterator[str]:
    """The database `database` on `server_url`'s server, new, dropped on exit."""
    base = make_url(server_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield base.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine

    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_explain")
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument(
        "--database", default=DATABASE, help="the throw-away database's name (dropped first)"
    )
    args = parser.parse_args(argv)
    server = os.environ.get("TIMBEL_BENCH_DATABASE_URL", DEFAULT_SERVER)
    with bench_database(server, args.database) as url:
        migrate.upgrade(url)
        engine = get_engine(url)
        started = time.perf_counter()
        steps = load(engine, args.executions)
        report("api_explain_load", time.perf_counter() - started, "s")
        print(f"  per statement: {', '.join(f'{s:.1f}' for s in steps)} s", flush=True)
        found = plans(engine)
        for name, seconds, loaded, built in trigram_indexes(engine):
            report(f"api_explain_build_{name}", seconds, "s")
            print(f"  size: {loaded / 2**20:,.1f} MiB loaded, {built / 2**20:,.1f} MiB built")
        chunks = "SELECT pg_table_size('execution_log_chunks')"  # with its TOAST
        with engine.connect() as connection:
            print(f"  execution_log_chunks: {connection.scalar(text(chunks)) / 2**20:,.1f} MiB")
        engine.dispose()
    bad = 0
    for name, statements in found.items():
        for number, plan in enumerate(statements):
            label = name if len(statements) == 1 else f"{name}_{number + 1}"
            report(f"api_explain_{label}", plan["ms"], "ms")
            print(f"  nodes: {', '.join(plan['nodes'])}", flush=True)
            scanned = plan["seq_scans"]
            if name.startswith("security_gate"):
                scanned = [t for t in plan["tables_scanned"] if t in BIG_TABLES + GATE_TABLES]
            if scanned:
                bad += 1
                print(f"  SEQ SCAN of {', '.join(scanned)}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
