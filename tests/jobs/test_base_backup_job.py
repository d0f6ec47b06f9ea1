"""The `base_backup` op job, executed in process against a throwaway PostgreSQL cluster with
WAL archiving on (tests/services/postgres_cluster.py, as the PITR tests): the base backup
`timbel backup base` takes, audited in the warehouse the cluster holds, then the retention
(keep 2) and the WAL only the deleted base backup needed; what is kept still recovers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from tests.conftest import missing_service
from tests.services.postgres_cluster import Cluster, check_programs, free_port, throwaway_cluster
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.base_backup import base_backup
from timbel_dagster.jobs.run_actor import acting_as
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.backup.base_writer import writer_path
from timbel_dagster.warehouse.backup.basebackup import list_base_backups
from timbel_dagster.warehouse.backup.pitr import recover_to_time
from timbel_dagster.warehouse.backup.wal import SEGMENT
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

# One cluster for the module: its tests share a worker under --dist loadgroup.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("base_backup_job")]


@dataclass(frozen=True)
class Warehouse:
    cluster: Cluster
    url: str  # the Timbel warehouse, database `timbel` of the cluster


@pytest.fixture(scope="module")
def warehouse() -> Iterator[Warehouse]:
    try:
        check_programs()
    except FileNotFoundError as error:
        missing_service(str(error))
    with throwaway_cluster() as cluster:
        cluster.sql("CREATE DATABASE timbel")
        url = f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/timbel"
        migrate.upgrade(url)
        yield Warehouse(cluster, url)
        get_engine(url).dispose()


@pytest.fixture
def settings(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TIMBEL_BASE_BACKUP_DIR", str(tmp_path / "bases"))
    monkeypatch.setenv("TIMBEL_WAL_ARCHIVE_DIR", str(warehouse.cluster.archive))
    monkeypatch.setenv("TIMBEL_BASE_BACKUP_KEEP", "2")
    get_settings.cache_clear()
    yield tmp_path / "bases"
    get_settings.cache_clear()


def _run(url: str) -> dg.ExecuteInProcessResult:
    with acting_as("minji.kim"):
        return base_backup.execute_in_process(
            resources={"warehouse": WarehouseResource(database_url=url)}, raise_on_error=False
        )


def _base_events(url: str) -> list[tuple[str, str | None, dict]]:
    with get_engine(url).connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(AuditEvent.action, AuditEvent.target, AuditEvent.details)
                .where(AuditEvent.action.like("backup.base%"))
                .order_by(AuditEvent.id)
            )
        ]


def test_the_job_takes_audits_and_prunes_base_backups(warehouse: Warehouse, settings: Path) -> None:
    cluster = warehouse.cluster
    cluster.sql("CREATE TABLE events (id int PRIMARY KEY, batch text NOT NULL)")
    taken = []
    for batch in range(3):
        result = _run(warehouse.url)
        assert result.success, result.all_events
        taken.append(result.output_for_node("base_backup_cluster"))
        cluster.sql(f"INSERT INTO events VALUES ({batch}, 'batch {batch}')")
        # Each base backup's start segment archived before the next run's prune looks for it.
        cluster.wait_archived(taken[-1]["start_segment"])
        cluster.switch_and_archive()
    first, second, third = taken
    assert first["start_segment"] < second["start_segment"] < third["start_segment"]

    # Keep 2: the third run deleted the first base backup, and the WAL before the second's
    # start, which only the first needed.
    assert third["pruned"] == [first["id"]] and third["wal_removed"] > 0
    assert [b["id"] for b in list_base_backups(settings)] == [second["id"], third["id"]]
    segments = sorted(p.name for p in cluster.archive.iterdir() if SEGMENT.match(p.name))
    assert segments[0] == second["start_segment"]
    assert first["start_segment"] not in segments

    # Audited in the warehouse the cluster holds, after each copy finished.
    events = _base_events(warehouse.url)
    assert [(a, t) for a, t, _ in events if a == "backup.base"] == [
        ("backup.base", b["id"]) for b in taken
    ]
    _action, _target, pruned = [e for e in events if e[0] == "backup.base_prune"][-1]
    assert pruned["deleted"] == [first["id"]] and pruned["keep"] == [third["id"], second["id"]]
    assert pruned["wal"]["cut"] == second["start_segment"]
    assert pruned["wal"]["removed"] == third["wal_removed"]
    assert events[0][2]["start_segment"] == first["start_segment"]

    # What is kept still recovers: the oldest kept base backup plus the WAL left, replayed to
    # a moment between two commits (everything checked; the copy is not started).
    ((noted,),) = cluster.sql("SELECT clock_timestamp()")
    cluster.sql("INSERT INTO events VALUES (10, 'after the noted time')")
    cluster.switch_and_archive()
    target = settings.parent / "recovered"
    done = recover_to_time(
        noted.isoformat(), target, base_dir=settings, wal_dir=cluster.archive, bindir=None,
        base_id=second["id"], port=free_port(),
    )  # fmt: skip
    assert done["base"] == second["id"] and done["wal"]["first"] == second["start_segment"]
    assert (target / "recovery.signal").is_file()


def test_the_job_refuses_a_sqlite_warehouse(settings: Path, tmp_path: Path) -> None:
    result = _run(f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert not result.success
    error = str(result.failure_data_for_node("base_backup_cluster").error)
    assert "base backups are of a PostgreSQL server" in error
    assert not settings.exists()


def test_a_failed_base_backup_is_audited_and_costs_no_old_one(
    warehouse: Warehouse, settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_basebackup missing from TIMBEL_PG_BINDIR: the run fails naming it, `backup.base_fail`
    is in the audit log, and nothing is pruned."""
    kept = {p.name for p in settings.iterdir()} if settings.exists() else set()
    monkeypatch.setenv("TIMBEL_PG_BINDIR", str(settings.parent / "no-programs"))
    get_settings.cache_clear()
    result = _run(warehouse.url)
    assert not result.success
    assert "pg_basebackup is not in TIMBEL_PG_BINDIR" in str(
        result.failure_data_for_node("base_backup_cluster").error
    )
    action, target, details = _base_events(warehouse.url)[-1]
    assert (action, target) == ("backup.base_fail", None)
    assert "pg_basebackup is not in TIMBEL_PG_BINDIR" in details["error"]
    assert ({p.name for p in settings.iterdir()} if settings.exists() else set()) == kept


def test_the_job_deletes_a_copy_a_killed_run_abandoned(
    warehouse: Warehouse, settings: Path
) -> None:
    """An earlier run killed half way (its pod evicted: another host) left `.ID.partial`, three
    days old, starting in the archive's first segment: the run deletes it, reports it, and it no
    longer holds the WAL pruning back. The run's own copy leaves no writer record behind."""
    started = dt.datetime.now(dt.UTC) - dt.timedelta(hours=72)
    killed = f"{started:%Y%m%dT%H%M%SZ}-base-dead00"
    partial = settings / f".{killed}.partial"
    (partial / "base").mkdir(parents=True)
    (partial / "backup_label").write_text(
        "START WAL LOCATION: 0/1000028 (file 000000010000000000000001)\nSTART TIMELINE: 1\n"
    )
    writer_path(partial).write_text(json.dumps({"host": "run-worker-5d8f", "pid": 7}))

    result = _run(warehouse.url)

    assert result.success, result.all_events
    [gone] = result.output_for_node("base_backup_cluster")["abandoned_copies_deleted"]
    assert gone["id"] == killed and gone["age_hours"] == pytest.approx(72, abs=0.5)
    assert gone["why"].startswith("started 72 h ago, written from host run-worker-5d8f")
    [step] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = step.event_specific_data.metadata
    assert metadata["abandoned_copies_deleted"].value == 1
    assert "is being written" not in metadata["wal"].value  # removed, or not archived yet
    assert sorted(p.name for p in settings.iterdir() if p.name.startswith(".")) == []
    _action, _target, pruned = _base_events(warehouse.url)[-1]
    assert [p["id"] for p in pruned["partials_deleted"]] == [killed]
