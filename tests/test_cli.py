"""The `timbel` command end to end: the installed entry point, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from timbel_dagster.warehouse.audit import verify_chain
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.models import AuditEvent

TIMBEL = str(Path(sys.executable).with_name("timbel"))


def run(
    args: list[str], cwd: Path, *, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TIMBEL_", "JENKINS", "GITLAB", "DAGSTER_HOME"))
    }
    environment |= {"TIMBEL_USER": "minji.kim", "TIMBEL_SAMPLE_END_DATE": "2026-11-01", **env}
    return subprocess.run(
        [TIMBEL, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def test_full_cycle_on_postgres(postgres_server_url: str, tmp_path: Path) -> None:
    from timbel_dagster.warehouse import migrate

    if migrate.current_revision(postgres_server_url):
        migrate.downgrade(postgres_server_url, "base")
    db = {"TIMBEL_DATABASE_URL": postgres_server_url}

    first = run(["db", "upgrade"], tmp_path, **db)
    assert first.returncode == 0 and "Migrated empty -> 0018" in first.stdout
    again = run(["db", "upgrade", "--json"], tmp_path, **db)
    assert json.loads(again.stdout)["changed"] is False

    loaded = json.loads(run(["sample", "--json"], tmp_path, **db).stdout)
    reloaded = json.loads(run(["sample", "--json"], tmp_path, **db).stdout)
    assert loaded["tables"]["pipeline_executions"]["written"] > 1000
    assert {t["written"] for t in reloaded["tables"].values()} == {0}
    with get_engine(postgres_server_url).connect() as connection:
        events = connection.execute(select(AuditEvent.actor, AuditEvent.action)).all()
        assert verify_chain(connection).intact
    assert events == [("minji.kim", "db.upgrade")] + [("minji.kim", "sample.load")] * 2

    failed = json.loads(
        run(
            ["executions", "list", "--status", "failed", "--limit", "500", "--json"], tmp_path, **db
        ).stdout
    )
    assert failed and {r["status"] for r in failed} == {"failed"}
    payments = json.loads(
        run(
            ["executions", "list", "--pipeline", "payments-api", "--since", "2026-10-15", "--json"],
            tmp_path,
            **db,
        ).stdout
    )
    assert payments and all(r["pipeline"].startswith("payments-api") for r in payments)
    assert all(r["started_at"] >= "2026-10-15" for r in payments)
    found = json.loads(
        run(
            ["executions", "list", "--search", "INTEGRATION-tests", "--json"], tmp_path, **db
        ).stdout
    )
    assert found and all("integration-tests" in r["error_message"] for r in found)

    shown = run(["executions", "show", failed[0]["id"][:8]], tmp_path, **db)
    assert shown.returncode == 0, shown.stderr
    assert "stages (timeline" in shown.stdout and "failed" in shown.stdout
    detail = json.loads(
        run(["executions", "show", failed[0]["id"], "--json"], tmp_path, **db).stdout
    )
    assert detail["id"] == failed[0]["id"] and len(detail["stages"]) >= 6


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/nowhere",
            "timbel: error: TIMBEL_DATABASE_URL: cannot connect to postgresql+psycopg://",
        ),
        ("definitely not a url", "timbel: error: TIMBEL_DATABASE_URL: not a database URL"),
        ("mysql://root@127.0.0.1/x", "timbel: error: TIMBEL_DATABASE_URL: unsupported database"),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["executions", "list"], ["sample"]])
def test_bad_database_url_is_one_line(
    tmp_path: Path, url: str, expected: str, command: list[str]
) -> None:
    completed = run(command, tmp_path, TIMBEL_DATABASE_URL=url)
    assert completed.returncode == 2
    assert completed.stderr.startswith(expected)
    assert completed.stderr.count("\n") == 1


def test_bad_input_names_what_was_wrong(tmp_path: Path) -> None:
    run(["db", "upgrade"], tmp_path)
    status = run(["executions", "list", "--status", "exploded"], tmp_path)
    assert status.returncode == 2 and "status must be one of" in status.stderr
    since = run(["executions", "list", "--since", "last tuesday"], tmp_path)
    assert since.returncode == 2 and "not a duration" in since.stderr
    missing = run(["executions", "show", "00000000-0000-0000-0000-000000000000"], tmp_path)
    assert missing.returncode == 2 and "no execution with id" in missing.stderr


def test_db_current_and_downgrade(tmp_path: Path) -> None:
    assert "current: empty" in run(["db", "current"], tmp_path).stdout
    run(["db", "upgrade"], tmp_path)
    assert "current: 0018  head: 0018" in run(["db", "current"], tmp_path).stdout
    down = run(["db", "downgrade", "base", "--yes"], tmp_path)
    assert down.returncode == 0 and "0018 -> empty" in down.stdout
    refused = run(["db", "downgrade", "base"], tmp_path)  # no terminal to confirm: aborts
    assert refused.returncode != 0


def test_history_stats_and_timeline(tmp_path: Path) -> None:
    assert run(["sample"], tmp_path).returncode == 0
    stats = json.loads(run(["executions", "stats", "--json"], tmp_path).stdout)
    assert len(stats) == 12
    assert all(s["p50_seconds"] <= s["p90_seconds"] <= s["p99_seconds"] for s in stats)
    table = run(["executions", "stats", "--pipeline", "payments"], tmp_path).stdout
    assert "payments-api/main" in table and "p99" in table

    [latest] = json.loads(
        run(
            [
                "executions",
                "list",
                "--pipeline",
                "web-frontend",
                "--status",
                "success",
                "--limit",
                "1",
                "--json",
            ],
            tmp_path,
        ).stdout
    )
    listed = run(
        ["executions", "list", "--pipeline", "web-frontend", "--limit", "3"], tmp_path
    ).stdout
    assert "duration percentiles of these pipelines:" in listed
    shown = run(["executions", "show", latest["id"]], tmp_path).stdout
    assert "stages (timeline from the start of the execution):" in shown
    assert "test / e2e-tests" in shown and "|" in shown and "typical" in shown
    detail = json.loads(run(["executions", "show", latest["id"], "--json"], tmp_path).stdout)
    assert detail["stages"][0]["offset_seconds"] is not None
    assert detail["pipeline_percentiles"]["pipeline"] == "commerce/web-frontend"


def test_reading_an_outdated_warehouse_says_to_upgrade(tmp_path: Path) -> None:
    run(["db", "upgrade", "--revision", "0001"], tmp_path)
    old = run(["executions", "list"], tmp_path)
    assert old.returncode == 2
    assert "run `timbel db upgrade`" in old.stderr and "at 0001" in old.stderr
