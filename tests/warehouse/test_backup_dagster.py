"""Dagster's own database in the backup: dagster.yaml's PostgreSQL storage read as
dagster-postgres reads it, and a real Dagster instance's database (created by dagster-postgres
itself, holding a real run) backed up beside the warehouse and restored into another."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import scratch_postgres_database
from timbel_dagster.settings import dagster_storage
from timbel_dagster.settings.dagster_storage import DagsterStorageError
from timbel_dagster.warehouse.backup import sources
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupKeys
from timbel_dagster.warehouse.backup.operations import create_backup, verify_backup
from timbel_dagster.warehouse.backup.restore import TargetNotEmptyError, restore_backup
from timbel_dagster.warehouse.backup.store import DirectoryStore

KEYS = BackupKeys.from_bytes(bytes(range(32)))


def _home(tmp_path: Path, yaml: str) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml)
    return home


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("telemetry:\n  enabled: false\n", None),  # SQLite, Dagster's default
        ("storage:\n  sqlite:\n    base_dir: /x\n", None),
        (
            "storage:\n  postgres:\n    postgres_url: postgresql://u:p@db:5433/dagster\n",
            "postgresql://u:p@db:5433/dagster",
        ),
        (
            "storage:\n  postgres:\n    postgres_url: {env: DAGSTER_TEST_PG_URL}\n",
            "postgresql://env@db/from_env",
        ),
        (
            "storage:\n  postgres:\n    postgres_db:\n      hostname: {env: DAGSTER_TEST_PG_HOST}\n"
            "      username: dagster\n      password: 'p@ss/word'\n      db_name: runs\n"
            "      params: {sslmode: require}\n",
            "postgresql://dagster:p%40ss%2Fword@pg.internal:5432/runs?sslmode=require",
        ),
        (
            "run_storage:\n  module: dagster_postgres.run_storage\n  class: PostgresRunStorage\n"
            "  config:\n    postgres_db: {hostname: h, username: u, db_name: d, port: 6543}\n",
            "postgresql://u@h:6543/d",
        ),
    ],
)
def test_dagster_yaml_storage_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml: str, expected: str | None
) -> None:
    monkeypatch.setenv("DAGSTER_TEST_PG_URL", "postgresql://env@db/from_env")
    monkeypatch.setenv("DAGSTER_TEST_PG_HOST", "pg.internal")
    assert dagster_storage.dagster_postgres_url(_home(tmp_path, yaml)) == expected


@pytest.mark.parametrize(
    ("yaml", "problem"),
    [
        ("storage:\n  postgres:\n    postgres_url: {env: DAGSTER_TEST_UNSET}\n",
         r"storage.postgres.postgres_url reads \$DAGSTER_TEST_UNSET, which is not set"),
        ("storage:\n  postgres:\n    postgres_db: {hostname: h}\n",
         "postgres_db lacks username, db_name"),
        ("storage:\n  postgres: {postgres_url: x, postgres_db: {}}\n", "exactly one of"),
        ("storage:\n  postgres:\n    postgres_db: {hostname: h, username: u, db_name: d, "
         "port: five}\n", "port 'five' is not a number"),
        ("storage: [unclosed\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_a_broken_dagster_yaml_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml: str, problem: str
) -> None:
    monkeypatch.delenv("DAGSTER_TEST_UNSET", raising=False)
    with pytest.raises(DagsterStorageError, match=problem):
        dagster_storage.dagster_postgres_url(_home(tmp_path, yaml))
    # no dagster.yaml: no database
    assert dagster_storage.dagster_postgres_url(tmp_path / "nowhere") is None


@dg.op
def _noted() -> int:
    return 1


@dg.job
def _tiny() -> None:
    _noted()


@pytest.fixture
def dagster_instance_url(
    dagster_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A real Dagster instance on PostgreSQL (its schema created by dagster-postgres), named
    in dagster.yaml through {env: ...} as in dagster.yaml.example, with one finished run."""
    url = make_url(dagster_postgres_url)
    monkeypatch.setenv("DAGSTER_TEST_PG_DB", str(url.database))
    home = _home(
        tmp_path,
        "storage:\n  postgres:\n    postgres_db:\n"
        f"      hostname: {url.host}\n      port: {url.port or 5432}\n"
        f"      username: {url.username}\n      db_name: {{env: DAGSTER_TEST_PG_DB}}\n"
        "telemetry:\n  enabled: false\n",
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert _tiny.execute_in_process(instance=instance).success
    found = dagster_storage.dagster_postgres_url(home)
    assert found is not None
    return found


@pytest.mark.parametrize("warehouse_backend", ["postgresql"], indirect=True)
def test_dagster_database_backed_up_and_restored(
    warehouse_url: str, dagster_instance_url: str, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path / "backups")
    manifest = create_backup(
        warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim",
        dagster_url=dagster_instance_url,
    )  # fmt: skip
    dagster = manifest["dagster"]
    assert dagster["file"] == f"{manifest['id']}.dagster.tbk"
    assert dagster["tables"]["runs"] == 1 and dagster["tables"]["event_logs"] > 5
    assert set(dagster["checksums"]) == set(dagster["tables"])
    assert (store.directory / dagster["file"]).is_file()
    checked = verify_backup(store, KEYS, manifest["id"])
    assert checked["verified_bytes"] == manifest["size"] + dagster["size"]

    with (
        scratch_postgres_database("restore_wh") as target,
        scratch_postgres_database("restore_dg") as dagster_target,
    ):
        with pytest.raises(BackupError, match="another database than --target"):
            restore_backup(store, KEYS, manifest["id"], target, dagster_target=target)
        restored = restore_backup(
            store, KEYS, manifest["id"], target, dagster_target=dagster_target
        )
        assert restored["dagster"]["tables"] == dagster["tables"]
        counts, sums = sources.pg_tables_seen(dagster_target)
        assert counts == dagster["tables"] and sums == dagster["checksums"]
        # Both targets hold tables now: each is refused without --force, before any write.
        with pytest.raises(TargetNotEmptyError, match="is not empty"):
            restore_backup(store, KEYS, manifest["id"], target, dagster_target=dagster_target)


@pytest.mark.parametrize("warehouse_backend", ["postgresql"], indirect=True)
def test_a_tampered_dagster_file_leaves_both_targets_untouched(
    warehouse_url: str, dagster_instance_url: str, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path / "backups")
    manifest = create_backup(
        warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim",
        dagster_url=dagster_instance_url,
    )  # fmt: skip
    path = store.directory / manifest["dagster"]["file"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x20
    path.write_bytes(bytes(blob))
    with (
        scratch_postgres_database("restore_wh") as target,
        scratch_postgres_database("restore_dg") as dagster_target,
    ):
        with pytest.raises(BackupError, match=r"Dagster's database\) fails authentication"):
            restore_backup(store, KEYS, manifest["id"], target, dagster_target=dagster_target)
        assert sources.pg_public_tables(target) == []
        assert sources.pg_public_tables(dagster_target) == []


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_a_backup_without_dagster_refuses_a_dagster_target(
    warehouse_url: str, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path / "backups")
    manifest = create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="x")
    assert manifest["dagster"] is None
    with pytest.raises(BackupError, match="holds no Dagster database"):
        restore_backup(store, KEYS, manifest["id"], f"sqlite:///{tmp_path / 'r.db'}",
                       dagster_target="postgresql://postgres@127.0.0.1/x")  # fmt: skip
    assert not (tmp_path / "r.db").exists()
