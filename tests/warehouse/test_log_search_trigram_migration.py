"""Migration 0021 (trigram indexes for substring search): on PostgreSQL it creates pg_trgm and
two GIN indexes over rows stored before it, and the downgrade drops them; SQLite gets nothing.
A role that may not create the extension still upgrades (a warning, no index), and the
statements docs/operations.md gives an administrator then add the indexes."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.conftest import scratch_postgres_database
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.read.log_search import search_logs
from timbel_dagster.warehouse.schema.models import (
    Base,
    ExecutionLog,
    ExecutionLogChunk,
    Pipeline,
    PipelineExecution,
    autogenerate_filter,
)

TRIGRAM = {
    "ix_execution_log_chunks_content_trgm": ("execution_log_chunks", "content"),
    "ix_pipeline_executions_error_message_trgm": ("pipeline_executions", "error_message"),
}
NOW = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"


def _trigram_indexes(url: str) -> dict[str, dict]:
    found = {}
    for table, _column in TRIGRAM.values():
        for index in inspect(get_engine(url)).get_indexes(table):
            if index["name"] in TRIGRAM:
                found[index["name"]] = index
    return found


def _store_a_log(url: str) -> None:
    pipeline, execution = uuid.uuid4(), uuid.uuid4()
    content = "error: container OOMKilled\n"
    with get_engine(url).begin() as connection:
        connection.execute(
            Pipeline.__table__.insert().values(
                id=pipeline, source="gitlab", ci_system="gitlab", name="shop/api"
            )
        )
        connection.execute(
            PipelineExecution.__table__.insert().values(
                id=execution, source="gitlab", pipeline_id=pipeline, external_id="7",
                status="failed", started_at=NOW, error_message="exit 137",
            )
        )  # fmt: skip
        connection.execute(
            ExecutionLog.__table__.insert().values(
                execution_id=execution, stream="", size=len(content), lines=1, complete=True,
                updated_at=NOW,
            )
        )  # fmt: skip
        connection.execute(
            ExecutionLogChunk.__table__.insert().values(
                execution_id=execution, stream="", start_offset=0, first_line=1,
                length=len(content), content=content,
            )
        )  # fmt: skip


def test_the_indexes_are_built_over_stored_rows_and_dropped_by_the_downgrade(
    database_url: str,
) -> None:
    migrate.upgrade(database_url, "0020")
    _store_a_log(database_url)
    assert migrate.upgrade(database_url) == ("0020", migrate.head_revision())
    indexes = _trigram_indexes(database_url)
    if get_engine(database_url).dialect.name == "sqlite":
        assert indexes == {}
    else:
        assert set(indexes) == set(TRIGRAM)
        for name, (_table, column) in TRIGRAM.items():
            assert indexes[name]["column_names"] == [column]
            options = indexes[name]["dialect_options"]
            assert options["postgresql_using"] == "gin"
            assert options["postgresql_ops"] == {column: "gin_trgm_ops"}
    with get_engine(database_url).connect() as connection:
        [match] = search_logs(connection, "oomkill")
    assert (match.line, match.how) == ("error: container OOMKilled", "substring")

    assert migrate.downgrade(database_url, "0020") == (migrate.head_revision(), "0020")
    assert _trigram_indexes(database_url) == {}
    with get_engine(database_url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM execution_log_chunks")).scalar() == 1


def _explain(url: str, statement: str) -> str:
    with get_engine(url).connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        return "\n".join(row[0] for row in connection.execute(text("EXPLAIN " + statement)))


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse_backend", ["postgresql"])
def test_an_invalid_index_is_built_again_and_a_valid_one_kept(warehouse_url: str) -> None:
    """An index an administrator made before the upgrade (docs/operations.md) is kept; one an
    interrupted `CREATE INDEX CONCURRENTLY` left invalid is built again."""
    migrate.downgrade(warehouse_url, "0020")
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        for name, (table, column) in TRIGRAM.items():
            connection.execute(
                text(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)")
            )
        connection.execute(
            text(
                "UPDATE pg_index SET indisvalid = false "
                "WHERE indexrelid = 'ix_execution_log_chunks_content_trgm'::regclass"
            )
        )
        kept = connection.execute(
            text("SELECT 'ix_pipeline_executions_error_message_trgm'::regclass::oid")
        ).scalar()
    migrate.upgrade(warehouse_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT indexrelid::regclass::text, indisvalid, indexrelid FROM pg_index "
                "WHERE indexrelid::regclass::text LIKE '%\\_trgm'"
            )
        ).all()
    assert {(name, valid) for name, valid, _oid in rows} == {(name, True) for name in TRIGRAM}
    assert kept in {oid for *_rest, oid in rows}
    plan = _explain(warehouse_url, "SELECT 1 FROM execution_log_chunks WHERE content ILIKE '%abc%'")
    assert "Bitmap Index Scan on ix_execution_log_chunks_content_trgm" in plan


@pytest.mark.postgres
def test_without_the_right_to_create_pg_trgm_the_upgrade_goes_on_without_the_indexes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    role = f"timbel_noext_{uuid.uuid4().hex[:8]}"
    with scratch_postgres_database("noext") as url:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f"CREATE ROLE {role} LOGIN"))
                # Owner of the schema's tables, but no CREATE on the database: pg_trgm is a
                # trusted extension, which only that privilege lets a non-superuser create.
                connection.execute(text(f"GRANT ALL ON SCHEMA public TO {role}"))
            as_role = make_url(url).set(username=role).render_as_string(hide_password=False)
            with caplog.at_level(logging.WARNING):
                assert migrate.upgrade(as_role) == (None, migrate.head_revision())
            assert "pg_trgm is not available (permission denied" in caplog.text
            assert "docs/operations.md" in caplog.text
            assert _trigram_indexes(as_role) == {}
            _store_a_log(as_role)
            with get_engine(as_role).connect() as connection:
                [match] = search_logs(connection, "oomkill")  # still found, by a scan
            assert match.line == "error: container OOMKilled"

            # What docs/operations.md tells an administrator to run, then the table owner.
            extension, *indexes = _documented_statements()
            with admin.connect() as connection:
                connection.execute(text(extension))
            with (
                get_engine(as_role)
                .connect()
                .execution_options(isolation_level="AUTOCOMMIT") as connection
            ):
                for statement in indexes:
                    connection.execute(text(statement))
            assert set(_trigram_indexes(as_role)) == set(TRIGRAM)
            with get_engine(as_role).connect() as connection:
                from alembic.autogenerate import compare_metadata
                from alembic.runtime.migration import MigrationContext

                context = MigrationContext.configure(
                    connection, opts={"include_object": autogenerate_filter("postgresql")}
                )
                differences = [
                    d
                    for d in compare_metadata(context, Base.metadata)
                    if not (d[0] == "remove_index" and d[1].name == "ix_execution_log_chunks_fts")
                ]
            assert differences == []
        finally:
            get_engine(make_url(url).set(username=role).render_as_string(False)).dispose()
            admin.dispose()
    with create_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    ).connect() as connection:
        connection.execute(text(f"DROP ROLE IF EXISTS {role}"))


def _documented_statements() -> list[str]:
    """The SQL block of docs/operations.md's 'Log search on PostgreSQL', one statement each."""
    section = OPERATIONS.read_text().split("## Log search on PostgreSQL", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block, "no sql block in the section"
    lines = [line for line in block.group(1).splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in " ".join(lines).split(";") if s.strip()]
