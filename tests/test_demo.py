"""`timbel demo` on a fresh directory: the main job, end to end, through Dagster."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import DemoRun
from tests.test_cli import run


def test_demo_materializes_everything_and_reports(demo_run: DemoRun) -> None:
    completed, directory = demo_run.completed, demo_run.directory
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    nodes = len(report["runs"])
    assert f"[{nodes}/{nodes}] materializing" in completed.stderr
    materialized = {key for run_ in report["runs"] for key in run_["assets"]}
    assert {
        "cicd/dora_metrics",
        "deploy/deployments",
        "cluster/cost_allocation",
        "slo/slo_status",
    } <= materialized
    # The demo's cluster metrics are the 24 hours up to the last completed hour of today (the
    # sample's last day).
    shown = re.search(
        r"3 clusters, (\d{4}-\d\d-\d\d \d\d:00) to (\d{4}-\d\d-\d\d )?\d\d:00", completed.stderr
    )
    assert shown, completed.stderr
    first = dt.datetime.strptime(shown[1], "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
    assert dt.timedelta(hours=23) < dt.datetime.now(dt.UTC) - first < dt.timedelta(hours=26)
    day = (first + dt.timedelta(hours=24)).date()
    assert len(report["cluster_cost"]) == 3
    assert all(c["allocated_usd"] > 0 and c["idle_usd"] >= 0 for c in report["cluster_cost"])
    # The sample's commerce namespaces reach their CPU quota; auth-gateway crash-loops in dev.
    assert report["alerts"] == {"firing": 4}
    executions = report["executions"]
    assert executions["total"] > 1000 and 0.6 < executions["success_rate"] < 0.95
    dora = report["dora"]
    assert dora["deployments"] > 20 and 0 < dora["change_failure_rate"] < 0.5
    assert dora["lead_time_hours_median"] > 0 and dora["time_to_restore_hours_median"] > 0

    # The runs are in the embedded instance that `make dev` opens.
    instance = dg.DagsterInstance.from_config(str(directory / ".timbel" / "dagster"))
    runs = instance.get_run_records()
    assert len(runs) == nodes and all(r.dagster_run.is_success for r in runs)
    assert (directory / ".timbel" / "warehouse.db").exists()
    # The demo's TIMBEL_HOME stays in sample mode for the CLI and `make dev`.
    assert report["sample_mode"]["marker"] == ".timbel/sample-mode"
    assert (directory / ".timbel" / "sample-mode").is_file()

    # A second demo finds everything stored already. Its cluster metrics are the 24 hours up
    # to the last completed hour, so a demo that starts in a later hour than the one before it
    # stores that hour: then the comparison is with one more run, in the same hour.
    # It runs where the first one ran (the tests that read the demo have copies of it).
    directory = demo_run.ran_in

    def window(completed: subprocess.CompletedProcess) -> str:
        found = re.search(r"3 clusters, ([^)]*)\)", completed.stderr)
        assert found, completed.stderr
        return found[1]

    same_day = {"TIMBEL_SAMPLE_END_DATE": day.isoformat()}
    before, again = completed, run(["demo", "--json"], directory, timeout=1200, **same_day)
    if window(again) != window(before):
        before, again = again, run(["demo", "--json"], directory, timeout=1200, **same_day)
    assert window(again) == window(before)
    report_again = json.loads(again.stdout)
    # (Snapshot assets - the ML assets, scans - report no rows_written; the model is not
    # retrained on an unchanged history.)
    wrote = [r for r in report_again["runs"] if set(r["rows_written"].values()) - {0}]
    assert not wrote, (wrote, again.stderr[-3000:])
    assert any(r["rows_written"] for r in report_again["runs"])


@pytest.mark.parametrize("sample_data", [None, "false"])
def test_demo_leaves_sample_mode_and_says_how_to_leave_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_data: str | None
) -> None:
    """The demo (its runs stubbed out here) leaves TIMBEL_HOME/sample-mode, and its report
    says once how to leave sample mode; a TIMBEL_SAMPLE_DATA=false that is set still wins."""
    from click.testing import CliRunner

    from timbel_dagster import demo
    from timbel_dagster.cli.app import main
    from timbel_dagster.settings import get_settings, load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    if sample_data is None:
        monkeypatch.delenv("TIMBEL_SAMPLE_DATA", raising=False)
    else:
        monkeypatch.setenv("TIMBEL_SAMPLE_DATA", sample_data)
    monkeypatch.setattr(demo, "run_demo", lambda settings, echo: demo.DemoReport("db", "home"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["demo"])
        as_json = json.loads(CliRunner().invoke(main, ["demo", "--json"]).output)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    marker = tmp_path / "home" / "sample-mode"
    assert marker.is_file() and "TIMBEL_SAMPLE_DATA=false" in marker.read_text()
    lines = result.output.splitlines()
    if sample_data is None:
        assert lines[-3:] == [
            "Sample mode: `timbel` commands here now use the sample organisation (remembered in",
            f"  {marker}). To use your own servers: delete that file, or set",
            "  TIMBEL_SAMPLE_DATA=false.",
        ]
        assert load_settings().timbel_sample_data is True
    else:
        assert lines[-2].startswith(f"Sample mode is remembered in {marker}, but TIMBEL_SAMPLE")
        assert load_settings().timbel_sample_data is False
    assert result.output.count("TIMBEL_SAMPLE_DATA=false") == 1

    assert as_json["sample_mode"] == {
        "marker": str(marker),
        "overridden_by_setting": sample_data is not None,
    }
