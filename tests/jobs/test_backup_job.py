"""The `backup` op job, executed in process: the same backup as `timbel backup create`."""

from __future__ import annotations

import base64
import datetime as dt
import functools
from pathlib import Path

import dagster as dg
import pytest

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.backup import backup
from timbel_dagster.jobs.run_actor import acting_as
from timbel_dagster.sensors.backups import backup_schedule
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.audit.anchors import AnchorFile
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup.crypto import BackupKeys
from timbel_dagster.warehouse.backup.operations import new_backup_id, verify_backup
from timbel_dagster.warehouse.backup.store import DirectoryStore, IncompleteUpload
from timbel_dagster.warehouse.engine import get_engine

RAW = bytes(range(32))


@pytest.fixture
def backup_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TIMBEL_BACKUP_KEY", base64.b64encode(RAW).decode())
    monkeypatch.setenv("TIMBEL_BACKUP_DIR", str(tmp_path / "backups"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_the_job_makes_a_verifiable_backup(warehouse_url: str, backup_settings: Path) -> None:
    with get_engine(warehouse_url).begin() as connection:
        head = append_event(connection, actor="minji.kim", action="test.before")
    with acting_as("minji.kim"):
        result = backup.execute_in_process(
            resources={"warehouse": WarehouseResource(database_url=warehouse_url)}
        )
    assert result.success
    made = result.output_for_node("backup_warehouse")
    store = DirectoryStore(backup_settings / "backups")
    assert verify_backup(store, BackupKeys.from_bytes(RAW), made["id"])["size"] == made["size"]
    anchor = AnchorFile(backup_settings / "home" / "audit-anchors.jsonl").newest()
    assert anchor is not None and anchor.event_hash == head


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_the_job_without_a_key_fails_naming_the_setting(
    warehouse_url: str, backup_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIMBEL_BACKUP_KEY")
    get_settings.cache_clear()
    result = backup.execute_in_process(
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("backup_warehouse")
    assert "TIMBEL_BACKUP_KEY is not set" in str(failure.error)


def test_the_nightly_schedule_is_off_until_turned_on() -> None:
    assert backup_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert backup_schedule.job_name == "backup"


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_prune_whose_delete_fails_fails_the_run_and_the_next_run_finishes_it(
    warehouse_url: str,
    backup_settings: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """The second run's backup is good, but the delete of the first one's data fails: the run
    fails naming it (after recording ops/backups); the third run deletes it."""
    resources = {"warehouse": WarehouseResource(database_url=warehouse_url)}
    instance = dg.DagsterInstance.ephemeral()
    request.addfinalizer(instance.dispose)
    run = functools.partial(
        backup.execute_in_process, resources=resources, instance=instance, raise_on_error=False
    )
    first = run().output_for_node("backup_warehouse")
    delete = DirectoryStore.delete

    def fails_for_the_first(self: DirectoryStore, name: str) -> None:
        if name == f"{first['id']}.tbk":
            raise PermissionError(f"cannot delete {name}")
        delete(self, name)

    monkeypatch.setattr(DirectoryStore, "delete", fails_for_the_first)
    failed = run()
    assert not failed.success
    assert f"could not delete {first['id']}.tbk" in str(
        failed.failure_data_for_node("backup_warehouse").error
    )
    recorded = instance.get_latest_materialization_event(dg.AssetKey(["ops", "backups"]))
    assert recorded is not None and recorded.run_id == failed.run_id  # the catalogue's state
    assert (backup_settings / "backups" / f"{first['id']}.tbk").exists()

    monkeypatch.setattr(DirectoryStore, "delete", delete)
    third = run()
    assert third.success
    assert not (backup_settings / "backups" / f"{first['id']}.tbk").exists()
    [step] = [e for e in third.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert step.event_specific_data.metadata["orphans_deleted"].value == 1


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_the_job_aborts_the_upload_of_a_killed_backup(
    warehouse_url: str,
    backup_settings: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """The partial file a backup killed three days ago left: a run whose abort fails succeeds
    and warns naming it (the sweep is housekeeping: no retry takes the backup again for it);
    the next run aborts it, logs it and counts it in its metadata."""
    backups = backup_settings / "backups"
    backups.mkdir(mode=0o700)
    killed = new_backup_id("sqlite", dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    partial = backups / f".{killed}.tbk.k3x9q2ab.partial"
    partial.write_bytes(b"half a backup")
    instance = dg.DagsterInstance.ephemeral()
    request.addfinalizer(instance.dispose)
    run = functools.partial(
        backup.execute_in_process,
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
        instance=instance,
        raise_on_error=False,
    )

    def fails(self: DirectoryStore, upload: IncompleteUpload) -> None:
        raise PermissionError(f"cannot delete {upload.upload_id}")

    with monkeypatch.context() as patched:
        patched.setattr(DirectoryStore, "abort_upload", fails)
        warned_run = run()
    assert warned_run.success
    said = f"warning: could not abort the incomplete upload {partial.name} of {killed}.tbk"
    warned = [entry.user_message for entry in instance.all_logs(warned_run.run_id)]
    assert any(m.startswith(said) for m in warned), warned
    assert partial.exists()

    done = run()
    assert done.success and not partial.exists()
    [step] = [e for e in done.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert step.event_specific_data.metadata["uploads_aborted"].value == 1
    logged = [entry.user_message for entry in instance.all_logs(done.run_id)]
    assert any(
        m.startswith(f"aborted incomplete upload {partial.name} of {killed}.tbk") for m in logged
    ), logged
