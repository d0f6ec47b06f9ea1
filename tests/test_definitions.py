"""The code location loads, validates, stays light to import, and its graph is reviewed."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy

from timbel_dagster.assets.freshness import with_freshness
from timbel_dagster.definitions import build_definitions
from timbel_dagster.settings import SettingsError, load_settings
from timbel_dagster.settings.freshness import INGESTION_ASSETS, Windows

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


def _windows(policy: dg.FreshnessPolicy | None) -> dict | None:
    """A time-window freshness policy's windows in hours (None: no policy)."""
    if policy is None:
        return None
    assert isinstance(policy, TimeWindowFreshnessPolicy), policy
    warn = policy.warn_window.to_timedelta() if policy.warn_window else None
    return {
        "warn_hours": warn / dt.timedelta(hours=1) if warn else None,
        "fail_hours": policy.fail_window.to_timedelta() / dt.timedelta(hours=1),
    }


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
            "freshness": _windows(node.freshness_policy),
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


# Assets computed from the warehouse alone: no freshness policy of their own (they are as
# fresh as their inputs, which have one). A new asset must be put here or in INGESTION_ASSETS.
DERIVED = {
    "alerts/alert_events",
    "audit/audit_report",
    "cicd/dora_metrics",
    "cluster/cost_allocation",
    "cluster/workload_status",
    "dashboards/grafana_dashboards",
    "ml/cost_forecast",
    "ml/pipeline_bottlenecks",
    "ml/risk_model",
    "ml/risk_scores",
    "ml/risk_training_set",
    "ops/backups",
    "security/vulnerability_findings",
    # Evaluated every 5 minutes from Prometheus and the warehouse; not an ingestion. Its
    # policy needs TIMBEL_SLO_FILE (the test below); the bare code location has no SLOs.
    "slo/slo_status",
}


def _policies(definitions: dg.Definitions) -> dict[str, dict | None]:
    graph = definitions.resolve_asset_graph()
    return {
        key.to_user_string(): _windows(graph.get(key).freshness_policy)
        for key in graph.get_all_asset_keys()
    }


def test_every_ingestion_asset_carries_a_freshness_policy_and_derived_ones_none() -> None:
    policies = _policies(defs)
    assert set(policies) == set(INGESTION_ASSETS) | DERIVED
    assert {key for key, windows in policies.items() if windows} == set(INGESTION_ASSETS)
    expected = {"ci": (2, 4), "delivery": (2, 4), "cluster": (2, 3), "inventory": (26, 48)}
    for key, group in INGESTION_ASSETS.items():
        warn, fail = expected[group]
        assert policies[key] == {"warn_hours": warn, "fail_hours": fail}, key


def test_the_freshness_windows_follow_the_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    settings = load_settings(
        timbel_freshness_ci_warn_hours=0.5,
        timbel_freshness_ci_fail_hours=1.5,
        timbel_freshness_inventory_fail_hours=170,
    )
    policies = _policies(build_definitions(settings=settings))
    assert policies["cicd/pipeline_executions"] == {"warn_hours": 0.5, "fail_hours": 1.5}
    assert policies["cicd/execution_logs"] == {"warn_hours": 0.5, "fail_hours": 1.5}
    assert policies["security/images"] == {"warn_hours": 26, "fail_hours": 170}
    assert policies["cluster/node_metrics"] == {"warn_hours": 2, "fail_hours": 3}
    assert policies["cicd/dora_metrics"] is None


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        # The schedule evaluates it every 5 minutes: two missed runs warn, five fail.
        ({"timbel_slo_file": "slos.yaml"}, {"warn_hours": 0.25, "fail_hours": 0.5}),
        # No SLOs: the schedule skips, nothing to be fresh.
        ({}, None),
        # The sample's SLOs are evaluated once by `timbel demo`, like the fixed sample.
        ({"timbel_slo_file": "slos.yaml", "timbel_sample_data": True}, None),
    ],
)
def test_the_slo_status_is_fresh_within_its_schedules_windows_when_slos_are_configured(
    tmp_path, monkeypatch, configured: dict, expected: dict | None
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    policies = _policies(build_definitions(settings=load_settings(**configured)))
    assert policies["slo/slo_status"] == expected
    assert policies["cicd/dora_metrics"] is None


def test_a_warn_window_not_under_the_fail_window_is_refused_in_one_line(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as refused:
        load_settings(timbel_freshness_cluster_warn_hours=3)
    assert str(refused.value) == (
        "TIMBEL_FRESHNESS_CLUSTER_FAIL_HOURS: must be more than "
        "TIMBEL_FRESHNESS_CLUSTER_WARN_HOURS (3)"
    )


def test_windows_for_an_asset_that_does_not_exist_are_refused() -> None:
    window = Windows(dt.timedelta(hours=1), dt.timedelta(hours=2))
    with pytest.raises(ValueError, match="do not exist: cicd/builds"):
        with_freshness([], {"cicd/builds": window})
