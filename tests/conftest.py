"""Shared fixtures: a fresh warehouse on SQLite and on a real PostgreSQL for every test run.

PostgreSQL comes from TIMBEL_TEST_DATABASE_URL (default: the local server's `test`
database). Each test session creates its own databases there and drops them afterwards, so
runs never collide. When the server is missing, tests skip with the reason, except under
CI=true, where they fail.

`warehouse_url` (migrated, empty) is migrated once per session and emptied per test;
`database_url` (no schema at all) is for the migration tests and any test that needs to run
the migrations itself.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.migrated_postgres import MigratedPostgres
from tests.once_per_run import exclusive, shared_directory, write_atomically

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist gives its workers COLUMNS=80 (the controller's terminal), and the CLI's
    # tables follow COLUMNS: without this a test would see another width under xdist than
    # alone. Tests that are about the width set COLUMNS themselves.
    os.environ.pop("COLUMNS", None)


DEMO_GROUP = "demo"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that reads the demo's output is `slow` (the demo takes about a minute):
    `pytest -m "not slow"` is the quick local run; CI runs everything. They share one xdist
    group, so that under `--dist loadgroup` they go to one worker and no other worker waits
    for the demo (`demo_run` still runs it once per run whatever the scheduling).

    A module whose tests share an expensive module-scoped fixture (a sample organisation
    loaded through the CLI, a JVM) names its own group (`pytestmark =
    pytest.mark.xdist_group(...)`), so the fixture is built on one worker, not on each.

    Slow tests come first: xdist hands out work in this order (its loadgroup scheduler puts
    the demo's group, the largest unit, first), so the long ones start at once and the short
    ones fill in around them, instead of one long test running alone at the end."""
    grouping = bool(getattr(config.option, "loadgroup", False))
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            if not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(DEMO_GROUP))
        group = item.get_closest_marker("xdist_group")
        if grouping and group is not None:
            _join_xdist_group(item, group.args[0] if group.args else group.kwargs["name"])
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _join_xdist_group(item: pytest.Item, group: str) -> None:
    """Put `item` in xdist group `group` the way xdist means to: its scheduler groups node ids
    that end in `@group`. xdist 3.8 writes that suffix to `item._nodeid`, which pytest 9.2
    no longer reads (a node's id is `item._id` now), so the grouping silently did nothing
    (pytest-xdist#1386). Once xdist writes the id pytest reads, this does nothing."""
    suffix = f"@{group}"
    node_id = getattr(item, "_id", None)
    if node_id is None or item.nodeid.endswith(suffix):
        return
    item._id = type(node_id).parse(f"{item.nodeid}{suffix}")


@pytest.fixture(autouse=True)
def _no_prometheus_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """prometheus-api-client retries a failed request 3 times with exponential backoff (about
    6 s against a closed port); tests of an unreachable Prometheus keep the retries, not the
    sleeps between them. (Commands run as subprocesses keep the library's default.)"""
    monkeypatch.setattr(
        "prometheus_api_client.prometheus_connect.RETRY_BACKOFF_FACTOR", 0, raising=False
    )


def missing_service(reason: str) -> None:
    """Skip locally, fail in CI: a test whose service is missing must not pass there."""
    if IN_CI:
        pytest.fail(f"required service missing under CI=true: {reason}")
    pytest.skip(reason)


@contextmanager
def scratch_postgres_database(purpose: str) -> Iterator[str]:
    """A database of its own on the test PostgreSQL server, dropped at the end."""
    from sqlalchemy.exc import OperationalError

    from timbel_dagster.warehouse.scratch import scratch_database

    server = os.environ.get("TIMBEL_TEST_DATABASE_URL", DEFAULT_PG)
    try:
        with scratch_database(server, f"test_{purpose}") as url:
            yield url
    except OperationalError as error:
        missing_service(f"PostgreSQL at {server} unreachable: {error.orig}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The session's warehouse database on PostgreSQL (tests reset its schema themselves)."""
    with scratch_postgres_database("warehouse") as url:
        yield url


@pytest.fixture
def dagster_postgres_url() -> Iterator[str]:
    """A separate database for a Dagster instance's own storage."""
    with scratch_postgres_database("dagster") as url:
        yield url


def _reset(url: str) -> None:
    from timbel_dagster.warehouse import migrate

    if migrate.current_revision(url) is not None:
        migrate.downgrade(url, "base")


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_backend(request: pytest.FixtureRequest) -> str:
    """Which database a warehouse test runs on: every one runs on both (ids `[sqlite]`,
    `[postgresql]`)."""
    return request.param


@pytest.fixture
def database_url(
    warehouse_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """An empty database (no schema) on each backend in turn: for tests of the migrations
    themselves, and any test that changes the schema."""
    if warehouse_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
        return
    url = request.getfixturevalue("postgres_server_url")
    _reset(url)
    yield url
    _reset(url)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite warehouse migrated to the newest schema once per session (per xdist worker);
    `warehouse_url` copies it for each test."""
    from timbel_dagster.warehouse import migrate
    from timbel_dagster.warehouse.engine import get_engine

    path = tmp_path_factory.mktemp("warehouse_template") / "warehouse.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    get_engine(url).dispose()
    # WAL mode: fold the log into the file, so the file alone is the whole database.
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def _postgres_head() -> Iterator[MigratedPostgres]:
    """A PostgreSQL warehouse migrated to the newest schema once per session (per xdist
    worker); `warehouse_url` empties it before each test."""
    with scratch_postgres_database("head") as url:
        database = MigratedPostgres(url)
        database.migrate()
        try:
            yield database
        finally:
            database.engine.dispose()


@pytest.fixture
def warehouse_url(warehouse_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database migrated to the newest schema and holding no rows.

    Migrated once per session and emptied per test (a copy of a template file on SQLite;
    DELETE from every table and sequences restarted on PostgreSQL): a full Alembic upgrade
    per test took most of the suite's time. A test may still downgrade or alter the schema:
    the next test finds it changed and gets it rebuilt.
    """
    if warehouse_backend == "sqlite":
        path = tmp_path / "warehouse.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    database: MigratedPostgres = request.getfixturevalue("_postgres_head")
    database.empty()
    return database.url


@pytest.fixture(scope="session")
def sample_source():
    """The sample organisation with a fixed end date, so tests see the same history."""
    import datetime as dt

    from timbel_dagster.resources.sample.source import SampleSource

    return SampleSource(end_date=dt.date(2026, 11, 1), seed=7)


@dataclass(frozen=True)
class DemoRun:
    """One `timbel demo --json` in a fresh directory: what it printed and where it wrote.

    `directory` is this worker's copy, for tests that read the run. `ran_in` is where the
    demo ran, for the one test that runs the demo again and expects it to change nothing:
    only there is that true, since the Grafana provisioning file the demo writes holds its
    directory's absolute path. No other test reads `ran_in`."""

    directory: Path
    completed: subprocess.CompletedProcess
    ran_in: Path

    @property
    def warehouse_url(self) -> str:
        return f"sqlite:///{self.directory / '.timbel' / 'warehouse.db'}"


def _completed_to_json(completed: subprocess.CompletedProcess) -> str:
    fields = ("returncode", "stdout", "stderr")
    return json.dumps(
        {"args": [str(a) for a in completed.args]} | {f: getattr(completed, f) for f in fields}
    )


def _completed_from_json(text: str) -> subprocess.CompletedProcess:
    saved = json.loads(text)
    return subprocess.CompletedProcess(
        saved["args"], saved["returncode"], saved["stdout"], saved["stderr"]
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`timbel demo` on the sample organisation as of today, run once per test run (about a
    minute) and shared by the tests that check its report and the ones that read its
    warehouse.

    Once per run, not per xdist worker: the first worker that needs it runs it in a
    directory every worker of the run sees and snapshots the result, the others wait on the
    lock and read the saved output. Each worker's tests get their own copy of the snapshot,
    so nothing a test does there (opening the Dagster instance, the notebook's connection)
    reaches another worker, and a second demo in `ran_in` changes no copy."""
    from tests.test_cli import run

    shared = shared_directory(tmp_path_factory)
    ran_in, snapshot = shared / "demo", shared / "demo-snapshot"
    saved = shared / "demo-completed.json"
    with exclusive(shared / "demo.lock"):
        if not saved.exists():
            # Left by a worker that died mid-run (the lock died with it): start afresh.
            for leftover in (ran_in, snapshot):
                shutil.rmtree(leftover, ignore_errors=True)
            ran_in.mkdir()
            # As a new user runs it: the sample organisation ends today, not on a pinned
            # date, so the demo and the notebook meet today's data (a pinned date hid a
            # failure of the notebook).
            completed = run(["demo", "--json"], ran_in, timeout=1200, TIMBEL_SAMPLE_END_DATE="")
            # (The Dagster instance and the warehouse are SQLite files under relative paths.)
            shutil.copytree(ran_in, snapshot)
            write_atomically(saved, _completed_to_json(completed))
    copy = tmp_path_factory.mktemp("demo")
    shutil.copytree(snapshot, copy, dirs_exist_ok=True)
    return DemoRun(copy, _completed_from_json(saved.read_text()), ran_in)
