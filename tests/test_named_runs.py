"""The Dagster UI after `timbel demo` and `timbel metrics collect`: every run is a named job
(never `__ephemeral_asset_job__`), metadata numbers are rounded, and the trend assets carry
their plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dagster as dg

from tests.conftest import DemoRun
from tests.test_cli import run
from timbel_dagster.assets.metadata import significant
from timbel_dagster.jobs.definitions import DOMAIN_JOBS

EPHEMERAL = "__ephemeral_asset_job__"
PLOTS = {
    "cicd/dora_metrics": "organisation_trend_plot",
    "cluster/cost_allocation": "cost_by_namespace_plot",
    "ml/risk_model": "calibration_plot",
}


def _instance(directory: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(directory / ".timbel" / "dagster"))


def _floats(value: object) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list | tuple):
        return [f for v in value for f in _floats(v)]
    return []


def test_metrics_collect_runs_the_cluster_metrics_job(tmp_path: Path) -> None:
    done = run(
        ["metrics", "collect", "--hours", "1", "--json"], tmp_path, TIMBEL_SAMPLE_DATA="true"
    )
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    instance = _instance(tmp_path)
    try:
        assert instance.get_run_by_id(run_id).job_name == "cluster_metrics"
    finally:
        instance.dispose()


def test_every_demo_run_is_a_named_domain_job(demo_run: DemoRun) -> None:
    assert demo_run.completed.returncode == 0, demo_run.completed.stderr
    instance = _instance(demo_run.directory)
    try:
        runs = [record.dagster_run for record in instance.get_run_records()]
    finally:
        instance.dispose()
    assert runs
    assert not [r.run_id for r in runs if r.job_name == EPHEMERAL]
    assert {r.job_name for r in runs} <= set(DOMAIN_JOBS)
    assert {"delivery_ingestion", "cluster_metrics", "ml_retrain"} <= {r.job_name for r in runs}
    assert {r.tags.get("timbel/launched_by") for r in runs} == {"demo"}


def test_demo_metadata_is_rounded_and_the_trends_are_plotted(demo_run: DemoRun) -> None:
    assert demo_run.completed.returncode == 0, demo_run.completed.stderr
    instance = _instance(demo_run.directory)
    try:
        latest = {
            key.to_user_string(): instance.get_latest_materialization_event(key)
            for key in instance.get_asset_keys()
        }
        unrounded = {
            f"{key}:{name}"
            for key, event in latest.items()
            for name, value in event.asset_materialization.metadata.items()
            for number in _floats(getattr(value, "value", value))
            if math.isfinite(number) and number != significant(number)
        }
    finally:
        instance.dispose()
    assert not unrounded
    for key, name in PLOTS.items():
        metadata = latest[key].asset_materialization.metadata
        assert name in metadata, (key, sorted(metadata))
        assert metadata[name].value.startswith("![")
        assert "](data:image/png;base64,iVBORw0KGgo" in metadata[name].value
