"""The test suite's own machinery: the shared warehouse fixtures (migrated once per session,
empty and at head in every test), the `slow` marker, the slowest tests printed by `make test`."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select

from tests.conftest import pytest_collection_modifyitems, scratch_postgres_database
from tests.migrated_postgres import MigratedPostgres
from timbel_dagster.sample_load import load_sample
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent, PipelineExecution

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def migrated() -> MigratedPostgres:
    with scratch_postgres_database("fixtures") as url:
        database = MigratedPostgres(url)
        database.migrate()
        yield database
        database.engine.dispose()


def _count(database: MigratedPostgres, table: type) -> int:
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_empty_deletes_every_row_and_restarts_the_sequences(
    migrated: MigratedPostgres, sample_source
) -> None:
    with migrated.engine.begin() as connection:
        append_event(connection, actor="a", action="x", target=None, details={})
    # The sample organisation fills tables that reference each other.
    load_sample(migrated.engine, sample_source, actor="minji.kim")
    assert _count(migrated, PipelineExecution) > 1000

    migrated.empty()

    assert _count(migrated, PipelineExecution) == _count(migrated, AuditEvent) == 0
    with migrated.engine.begin() as connection:
        first = connection.execute(
            insert(AuditEvent).returning(AuditEvent.id),
            [{"at": NOW, "actor": "a", "action": "x", "details": {}, "prev_hash": "", "hash": "h"}],
        ).scalar_one()
    assert first == 1  # as in a freshly migrated database
    assert migrated.rebuilds == 0


def test_a_schema_a_test_changed_is_rebuilt(migrated: MigratedPostgres) -> None:
    damages = {
        "downgrade": None,
        "drop version": "DROP TABLE alembic_version",
        "add column": "ALTER TABLE audit_events ADD COLUMN extra integer",
    }
    for rebuilds, (damage, statement) in enumerate(damages.items(), start=1):
        if statement is None:
            migrate.downgrade(migrated.url, "0005")
        else:
            with migrated.engine.begin() as connection:
                connection.exec_driver_sql(statement)
        get_engine(migrated.url).dispose()

        migrated.empty()

        assert migrated.rebuilds == rebuilds, damage
        assert migrate.current_revision(migrated.url) == migrate.head_revision()
        with migrated.engine.connect() as connection:
            columns = connection.exec_driver_sql(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'audit_events'"
            ).scalars()
            assert "extra" not in set(columns)
        get_engine(migrated.url).dispose()


def test_warehouse_url_is_at_head_and_empty(warehouse_url: str, tmp_path: Path) -> None:
    assert migrate.current_revision(warehouse_url) == migrate.head_revision()
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(AuditEvent)).scalar() == 0
    if warehouse_url.startswith("sqlite"):
        # A copy of the session's template in the test's own directory, never the template.
        assert warehouse_url == f"sqlite:///{tmp_path / 'warehouse.db'}"


def test_a_test_that_downgrades_its_warehouse_does_not_affect_the_next(warehouse_url: str) -> None:
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="a", action="x", target=None, details={})
    migrate.downgrade(warehouse_url, "base")
    assert migrate.current_revision(warehouse_url) is None


def test_the_next_test_finds_its_warehouse_at_head_and_empty(warehouse_url: str) -> None:
    # Run after the test above (or before it: either order passes), in the same session.
    assert migrate.current_revision(warehouse_url) == migrate.head_revision()
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(AuditEvent)).scalar() == 0


def test_every_test_of_the_demo_is_marked_slow() -> None:
    class Item:
        def __init__(self, *fixtures: str) -> None:
            self.fixturenames = fixtures
            self.markers: list[pytest.MarkDecorator] = []

        def add_marker(self, marker: pytest.MarkDecorator) -> None:
            self.markers.append(marker)

        def get_closest_marker(self, name: str) -> pytest.MarkDecorator | None:
            return next((m for m in self.markers if m.name == name), None)

    demo, other = Item("demo_run", "tmp_path"), Item("warehouse_url")
    items = [other, demo]
    config = SimpleNamespace(option=SimpleNamespace())  # not an xdist worker
    pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
    assert [m.name for m in demo.markers] == ["slow", "xdist_group"] and other.markers == []
    assert demo.markers[1].args == ("demo",)  # runs the demo on one worker
    assert items == [demo, other]  # slow tests first


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_prints_the_slowest_twenty() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    [pytest_line] = [line for line in dry_run.splitlines() if "/pytest " in line]
    assert "--durations=20" in pytest_line.split()


def test_an_unreachable_prometheus_is_retried_without_sleeping() -> None:
    from prometheus_api_client import PrometheusConnect

    url = "http://127.0.0.1:9"
    retry = PrometheusConnect(url=url)._session.get_adapter(url).max_retries
    assert (retry.total, retry.backoff_factor) == (3, 0)  # the library's retries, no sleeps


def test_the_xdist_group_holds_under_loadgroup(tmp_path: Path) -> None:
    """Under `-n 2 --dist loadgroup` every test marked `xdist_group("g")` runs on one worker,
    while the rest spread over both: the suite's own collection hook, as the modules with an
    expensive fixture use it (pytest-xdist#1386: without `_join_xdist_group` they spread)."""
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_collection_modifyitems  # the suite's hook\n"
    )
    (tmp_path / "test_spread.py").write_text(
        "import os, pathlib\n\nimport pytest\n\n"
        "def record(name):\n"
        "    pathlib.Path(name).write_text(os.environ['PYTEST_XDIST_WORKER'])\n\n"
        + "".join(
            ("@pytest.mark.xdist_group('g')\n" if kind == "grouped" else "")
            + f"def test_{kind}_{n}():\n    record('{kind}_{n}')\n\n"
            for n in range(8)
            for kind in ("grouped", "free")
        )
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
         "no:cacheprovider", "-p", "no:randomly", str(tmp_path / "test_spread.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    workers = {
        p.name: p.read_text() for p in tmp_path.iterdir() if "_" in p.name and "." not in p.name
    }
    grouped = {w for name, w in workers.items() if name.startswith("grouped")}
    assert len(workers) == 16 and len(grouped) == 1, workers
    assert set(workers.values()) == {"gw0", "gw1"}  # the rest is spread
