"""The `backup` job, the catalogue and `backup_monitor` together: a failed backup is recorded
and alerts (`backup-failed`) until a good one resolves it, `ops/backups` is materialized by
every run, an old last good backup alerts (`backup-stale`), and an installation that never
tried a backup is not alerted. The same for base backups, from their audit events: a failed
one alerts (`base-backup-failed`) and an old one (`base-backup-stale`), each until a base
backup is taken, and a rule of the same name in the rules file changes the threshold."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, insert, select, update

from timbel_dagster.assets.ops.backups import backups
from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.jobs.backup import backup as backup_job
from timbel_dagster.notify.subscriptions import subscribe
from timbel_dagster.sensors.backups import backup_monitor
from timbel_dagster.sensors.notifications import alert_rule_sensor
from timbel_dagster.settings import get_settings
from timbel_dagster.warehouse.backup.base_record import record_event, take_recorded_base_backup
from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.backups import BackupRecord
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import AuditEvent, User
from timbel_dagster.warehouse.schema.notify import Alert

pytestmark = pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
HOOK = "/hooks/backups"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TIMBEL_BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.delenv("TIMBEL_BACKUP_KEY", raising=False)
    monkeypatch.delenv("TIMBEL_BACKUP_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def slack(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, warehouse_url: str) -> Any:
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", httpserver.url_for(HOOK))
    get_settings.cache_clear()
    now = dt.datetime.now(dt.UTC)
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(insert(User).values(
            id=stable_id("users", "ann"), source="test", name="ann", display_name="Ann",
            email="ann@example.com", role="developer", team="platform", slack_id="U1",
            created_at=now, updated_at=now,
        ))  # fmt: skip
    subscribe(get_engine(warehouse_url), "ann", "slack", event="alert", min_severity="high")
    return httpserver


def _run(url: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return backup_job.execute_in_process(
        resources={"warehouse": WarehouseResource(database_url=url)},
        instance=instance,
        raise_on_error=False,
    )


def _tick(
    sensor: Any, url: str, instance: dg.DagsterInstance, rules_file: Path | None = None
) -> str:
    notifier = NotifierResource(
        database_url=url, rules_file=str(rules_file) if rules_file else None
    )
    with dg.build_sensor_context(instance=instance, resources={"notifier": notifier}) as context:
        result = sensor(context)
    assert isinstance(result, dg.SkipReason), result
    return result.skip_message or ""


def _alerts(url: str) -> dict[str, tuple[str, dict]]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(Alert.rule, Alert.state, Alert.labels)).all()
    return {rule: (state, labels) for rule, state, labels in rows}


def _catalogue_metadata(instance: dg.DagsterInstance) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey(["ops", "backups"]))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_a_failed_backup_alerts_until_a_good_one(
    warehouse_url: str, settings: Path, slack: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        assert _tick(backup_monitor, warehouse_url, instance).startswith(
            "4 rules, 0 active series"
        )  # never tried: nothing to say

        failed = _run(warehouse_url, instance)  # no TIMBEL_BACKUP_KEY
        assert not failed.success
        with get_engine(warehouse_url).connect() as connection:
            row = connection.execute(select(BackupRecord.__table__)).one()
        assert row.status == "failed" and "TIMBEL_BACKUP_KEY is not set" in row.error
        assert _catalogue_metadata(instance)["failed_last_24h"] == 1

        assert "1 transitions, 1 notices sent" in _tick(backup_monitor, warehouse_url, instance)
        state, labels = _alerts(warehouse_url)["backup-failed"]
        assert state == "firing" and labels["backup"] == row.id
        [posted] = [r.get_data(as_text=True) for r, _ in slack.log]
        assert f"backup {row.id} failed: BackupKeyError: TIMBEL_BACKUP_KEY is not set" in posted
        # alert_rule_sensor leaves the backup rules to backup_monitor (ingestion-stale and the SLO
        # burn-rate rules are its own)
        assert _tick(alert_rule_sensor, warehouse_url, instance).startswith("3 rules,")

        monkeypatch.setenv("TIMBEL_BACKUP_KEY", base64.b64encode(bytes(range(32))).decode())
        get_settings.cache_clear()
        good = _run(warehouse_url, instance)
        assert good.success
        metadata = _catalogue_metadata(instance)
        assert metadata["good_backups"] == 1 and metadata["last_good_bytes"] > 0
        assert metadata["last_good_backup"] == good.output_for_node("backup_warehouse")["id"]
        assert metadata["latest_status"] == "good"
        _tick(backup_monitor, warehouse_url, instance)
        assert _alerts(warehouse_url)["backup-failed"][0] == "resolved"
        assert "backup-stale" not in _alerts(warehouse_url)


def test_a_last_good_backup_older_than_26_hours_alerts(warehouse_url: str, settings: Path) -> None:
    def catalogued(backup_id: str, hours_ago: float) -> None:
        with get_engine(warehouse_url).begin() as connection:
            connection.execute(insert(BackupRecord).values(
                id=backup_id, created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago),
                created_by="test", source="sqlite", location="x", size=10, sha256="0" * 64,
                rows=1, tables={}, status="good",
            ))  # fmt: skip

    catalogued("20261203T021700Z-sqlite-aaaaaa", 25.5)
    with dg.DagsterInstance.ephemeral() as instance:
        assert "0 active series" in _tick(backup_monitor, warehouse_url, instance)
        catalogued("20261202T021700Z-sqlite-000000", 50)  # older: changes nothing
        assert "0 active series" in _tick(backup_monitor, warehouse_url, instance)

    with get_engine(warehouse_url).begin() as connection:
        connection.execute(BackupRecord.__table__.delete().where(
            BackupRecord.id == "20261203T021700Z-sqlite-aaaaaa"))  # fmt: skip
    with dg.DagsterInstance.ephemeral() as instance:
        assert "1 active series" in _tick(backup_monitor, warehouse_url, instance)
    state, labels = _alerts(warehouse_url)["backup-stale"]
    assert state == "firing" and labels == {"last_good": "20261202T021700Z-sqlite-000000"}
    assert set(_alerts(warehouse_url)) == {"backup-stale"}  # no base backup was ever tried


def test_the_asset_materialized_on_its_own_reads_the_catalogue(
    warehouse_url: str, settings: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    with get_engine(warehouse_url).begin() as connection:
        for backup_id, hours_ago, status, size in (
            ("20261204T021700Z-sqlite-000001", 30, "good", 4096),
            ("20261205T021700Z-sqlite-000002", 6, "failed", 0),
            ("20261203T021700Z-sqlite-000003", 54, "pruned", 1024),
        ):
            connection.execute(insert(BackupRecord).values(
                id=backup_id, created_at=now - dt.timedelta(hours=hours_ago), created_by="t",
                source="sqlite", location="x", size=size, sha256="", rows=0, tables={},
                status=status, error="boom" if status == "failed" else None,
            ))  # fmt: skip
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [backups],
            resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
            instance=instance,
        )
        assert result.success
        metadata = _catalogue_metadata(instance)
    assert metadata["last_good_backup"] == "20261204T021700Z-sqlite-000001"
    assert metadata["last_good_bytes"] == 4096 and metadata["good_backups"] == 1
    assert metadata["failed_last_24h"] == 1 and metadata["latest_status"] == "failed"
    assert 29.9 < metadata["last_good_age_hours"] < 30.1


# --- base backups: `backup.base` and `backup.base_fail` in the audit log ---------------------


def _base_taken(url: str, base_id: str, days_ago: float) -> dt.datetime:
    """A base backup's event as `timbel backup base` records it, dated `days_ago`."""
    assert record_event(url, actor="dagster", action="backup.base", target=base_id,
                        details={"path": f"/bases/{base_id}"})  # fmt: skip
    return _date_newest(url, days_ago)


def _date_newest(url: str, days_ago: float) -> dt.datetime:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    with get_engine(url).begin() as connection:
        newest = select(func.max(AuditEvent.id)).scalar_subquery()
        connection.execute(update(AuditEvent).where(AuditEvent.id == newest).values(at=at))
    return at


def _posted(slack: HTTPServer) -> list[str]:
    return [r.get_data(as_text=True) for r, _ in slack.log]


def test_a_failed_base_backup_alerts_until_one_is_taken(
    warehouse_url: str, settings: Path, slack: HTTPServer
) -> None:
    nowhere = settings / "no-programs"
    with dg.DagsterInstance.ephemeral() as instance:
        assert _tick(backup_monitor, warehouse_url, instance).startswith(
            "4 rules, 0 active series"
        )  # never tried: nothing to say

        # A base backup that fails (pg_basebackup missing) as the job and the command record it.
        with pytest.raises(BackupError, match="pg_basebackup is not in TIMBEL_PG_BINDIR"):
            take_recorded_base_backup(
                "postgresql://replicator@127.0.0.1:5432/postgres", settings / "bases",
                bindir=nowhere, database_url=warehouse_url, actor="dagster",
                progress=lambda _line: None,
            )  # fmt: skip
        with get_engine(warehouse_url).connect() as connection:
            failed_at = connection.execute(
                select(AuditEvent.at).where(AuditEvent.action == "backup.base_fail")
            ).scalar_one()

        assert "1 active series, 1 transitions, 1 notices sent" in _tick(
            backup_monitor, warehouse_url, instance
        )
        error = f"BackupError: pg_basebackup is not in TIMBEL_PG_BINDIR ({nowhere})"
        stamp = failed_at.isoformat(timespec="seconds")
        assert _alerts(warehouse_url) == {
            "base-backup-failed": ("firing", {"failed_at": stamp, "error": error})
        }  # not stale: the first attempt was just now
        [posted] = _posted(slack)
        assert f"base backup failed at {stamp}: BackupError: pg_basebackup is not in" in posted
        # alert_rule_sensor leaves the base backup rules to backup_monitor too
        assert _tick(alert_rule_sensor, warehouse_url, instance).startswith("3 rules,")

        _base_taken(warehouse_url, "20261206T031700Z-base-0a1b2c", 0)
        assert "0 active series, 1 transitions" in _tick(backup_monitor, warehouse_url, instance)
        assert _alerts(warehouse_url)["base-backup-failed"][0] == "resolved"
        assert set(_alerts(warehouse_url)) == {"base-backup-failed"}


def test_a_base_backup_older_than_8_days_alerts_until_a_new_one(
    warehouse_url: str, settings: Path, slack: HTTPServer
) -> None:
    _base_taken(warehouse_url, "20261122T031700Z-base-000001", 7.5)
    with dg.DagsterInstance.ephemeral() as instance:
        assert "0 active series" in _tick(backup_monitor, warehouse_url, instance)

        _date_newest(warehouse_url, 9)  # the same base backup, older
        assert "1 active series, 1 transitions, 1 notices sent" in _tick(
            backup_monitor, warehouse_url, instance
        )
        assert _alerts(warehouse_url) == {
            "base-backup-stale": ("firing", {"last_base": "20261122T031700Z-base-000001"})
        }  # the logical backup rules stay silent: that catalogue is empty
        [posted] = _posted(slack)
        assert "no base backup for 9.0 days (last: 20261122T031700Z-base-000001)" in posted

        _base_taken(warehouse_url, "20261129T031700Z-base-000002", 0)
        assert "0 active series, 1 transitions" in _tick(backup_monitor, warehouse_url, instance)
        assert _alerts(warehouse_url)["base-backup-stale"][0] == "resolved"


def test_a_rule_of_the_same_name_sets_the_base_backup_threshold(
    warehouse_url: str, settings: Path
) -> None:
    _base_taken(warehouse_url, "20261203T031700Z-base-000001", 3)
    daily = settings / "alert-rules.yaml"
    daily.write_text(
        "rules:\n  - name: base-backup-stale\n    severity: high\n"
        "    fact: base_backup_age\n    threshold: '> 172800'\n"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        # Built in: 8 days; 3 are fine.
        assert "4 rules, 0 active series" in _tick(backup_monitor, warehouse_url, instance)
        # The file's rule replaces it (still 4 backup rules): 2 days.
        assert "4 rules, 1 active series, 1 transitions" in _tick(
            backup_monitor, warehouse_url, instance, rules_file=daily
        )
    assert _alerts(warehouse_url) == {
        "base-backup-stale": ("firing", {"last_base": "20261203T031700Z-base-000001"})
    }
