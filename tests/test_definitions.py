"""The code location loads, validates, stays light to import, and its graph is reviewed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from timbel_dagster.definitions import build_definitions

defs = build_definitions()  # the code location, partitions from the default start

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).with_name("snapshots") / "definitions.json"
# Libraries `import dagster` does not load itself, which the code location must not load at
# import either: every webserver, daemon and run worker pays for them (budget: 1.5x `import
# dagster`, benchmarks/import_time.py). They load inside the runs that use them.
HEAVY = (
    "sqlalchemy",
    "pandas",
    "numpy",
    "sklearn",
    "scipy",
    "matplotlib",
    "jenkins",
    "gitlab",
    "kubernetes",
    "prometheus_api_client",
    "psycopg",
    "alembic",
    "requests",
    "urllib3",
    "httpx",
    "rich",
    "jinja2",
    "cryptography",
    "pydantic_settings",  # the Settings model (settings/model.py) builds on first use
)


def _graph() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "has_description": bool(node.description),
            "partitions": str(node.partitions_def) if node.partitions_def else None,
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
        "resources": sorted(defs.resources or {}),
    }


def test_asset_graph_matches_the_reviewed_snapshot() -> None:
    """When the graph changes on purpose, regenerate with TIMBEL_UPDATE_SNAPSHOTS=1 and review."""
    current = _graph()
    if os.environ.get("TIMBEL_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_asset_follows_the_conventions() -> None:
    for key, node in _graph()["assets"].items():
        domain, _table = key.split("/")
        assert node["group"] == domain, key
        assert node["kinds"] and node["owners"] and node["has_description"], key


def test_definitions_validate_with_the_dagster_cli() -> None:
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful" in completed.stdout + completed.stderr


def test_loading_the_location_imports_no_heavy_library_and_reads_no_settings() -> None:
    code = (
        "import sys, timbel_dagster.definitions as d\n"
        "import timbel_dagster.settings as s\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules], s.get_settings.cache_info().currsize)"
    )
    env = {**os.environ, "TIMBEL_DATABASE_URL": "this would fail if it were read"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert out == "[] 0"


def test_the_daemon_executor_is_multiprocess_with_forkserver() -> None:
    job = defs.resolve_job_def("delivery_ingestion")
    assert job.executor_def.name == "multiprocess"
    assert isinstance(defs.executor, dg.ExecutorDefinition)


def test_loading_the_location_starts_the_partitions_on_the_history_start_setting() -> None:
    """Dagster calls `defs` when it loads the location (not at import): TIMBEL_HISTORY_START
    is the first day of the daily partitions and the first hour of the cluster-hourly ones."""
    code = (
        "import dagster as dg\n"
        "from timbel_dagster.definitions import defs\n"
        "graph = defs().resolve_asset_graph()\n"
        "daily = graph.get(dg.AssetKey(['cicd', 'pipeline_executions'])).partitions_def\n"
        "hourly = graph.get(dg.AssetKey(['cluster', 'node_metrics'])).partitions_def\n"
        "print(daily.get_first_partition_key(), hourly.get_partitions_def_for_dimension('hour')"
        ".get_first_partition_key())"
    )
    env = {**os.environ, "TIMBEL_HISTORY_START": "2015-03-01"}
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert out == "2015-03-01 2015-03-01-00:00"
