"""The code location under Dagster's own processes: the webserver and a daemon-style run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from timbel_dagster.partitions import range_tags

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _environment(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIMBEL_")}
    return clean | {
        "DAGSTER_HOME": str(home),
        "TIMBEL_HOME": str(tmp_path / ".timbel"),
        "TIMBEL_SAMPLE_DATA": "true",
        "TIMBEL_SAMPLE_END_DATE": "2026-11-01",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


@pytest.mark.slow
def test_webserver_loads_the_location(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=_environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                data = _graphql(
                    port,
                    "{ workspaceOrError { ... on Workspace { locationEntries"
                    " { name loadStatus locationOrLoadError { __typename } } } } }",
                )
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "webserver did not answer within 120 s"
                time.sleep(0.5)
        [entry] = data["workspaceOrError"]["locationEntries"]
        assert entry["name"] == "timbel_dagster"
        assert entry["loadStatus"] == "LOADED"
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_job_runs_with_the_multiprocess_forkserver_executor(tmp_path: Path) -> None:
    environment = _environment(tmp_path)
    subprocess.run(
        [str(BIN / "timbel"), "db", "upgrade"],
        cwd=tmp_path,
        env=environment,
        check=True,
        capture_output=True,
    )
    completed = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "timbel_dagster.definitions",
            "-j",
            "delivery_ingestion",
            "--tags",
            # Two weeks of the sample: the test is about the executor's processes, and three
            # months made it one of the slowest of the suite.
            json.dumps(range_tags("2026-10-19", "2026-11-02")),
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    instance = dg.DagsterInstance.from_config(environment["DAGSTER_HOME"])
    [record] = instance.get_run_records()
    assert record.dagster_run.is_success
    materialized = instance.get_asset_keys()
    assert dg.AssetKey(["cicd", "dora_metrics"]) in materialized
    assert len(materialized) == 10
