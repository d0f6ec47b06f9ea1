"""`timbel slo list|status` end to end on the sample organisation (`timbel sample`), whose
SLOs slo/slo_status evaluates from the warehouse (sample mode, no TIMBEL_SLO_FILE)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from tests.test_cli import invoke
from timbel_dagster.assets.slo.status import slo_status
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.slo.spec import SAMPLE_SLO_FILE

SAMPLE = {"TIMBEL_SAMPLE_DATA": "true"}
SAMPLE_END = "2026-11-01T00:00:00+00:00"  # tests.test_cli pins the sample's end date


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("slo-sample")
    loaded = invoke(["sample"], directory)
    assert loaded.returncode == 0, loaded.stderr
    return directory


def test_list_shows_the_sample_slos_in_sample_mode(sample_dir: Path) -> None:
    listed = invoke(["slo", "list", "--json"], sample_dir, **SAMPLE)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [f"{r['service']}/{r['slo']}" for r in rows] == [
        "payments-api/pipeline-success",
        "checkout-web/pipeline-success",
        "checkout-web/pipeline-duration",
        "ml-scoring/pipeline-duration",
    ]
    assert rows[2]["sli"] == "every pipeline of checkout-web: within 16m"
    text = invoke(["slo", "list"], sample_dir, **SAMPLE)
    assert "4 SLOs from the sample's SLO file" in text.stdout


def test_without_slos_list_says_how_to_configure_them(tmp_path: Path) -> None:
    listed = invoke(["slo", "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "no SLOs: set TIMBEL_SLO_FILE" in listed.stdout


def test_a_bad_slo_file_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "slos.yaml"
    bad.write_text("slos:\n  - service: shop\n    name: api\n    objective: 120\n")
    listed = invoke(["slo", "list"], tmp_path, TIMBEL_SLO_FILE=str(bad))
    assert listed.returncode == 2
    assert f"{bad}:2: slo shop/api: objective: 120 must be above 0 and below 100" in listed.stderr


def test_status_shows_what_the_asset_stored(sample_dir: Path) -> None:
    empty = invoke(["slo", "status"], sample_dir, **SAMPLE)
    assert empty.returncode == 0, empty.stderr
    assert "no SLO status stored yet" in empty.stdout
    url = f"sqlite:///{sample_dir / '.timbel' / 'warehouse.db'}"
    result = dg.materialize(
        [slo_status],
        resources={
            "warehouse": WarehouseResource(database_url=url),
            # Live sources: the sample's SLOs read only the warehouse, never Prometheus.
            "sources": DeliverySourcesResource(mode="live"),
        },
        run_config={
            "ops": {
                "slo__slo_status": {"config": {"slo_file": str(SAMPLE_SLO_FILE), "at": SAMPLE_END}}
            }
        },
    )
    assert result.success
    shown = invoke(["slo", "status", "--json"], sample_dir, **SAMPLE)
    assert shown.returncode == 0, shown.stderr
    rows = {f"{r['service']}/{r['slo']}": r for r in json.loads(shown.stdout)}
    assert sorted(rows) == [
        "checkout-web/pipeline-duration",
        "checkout-web/pipeline-success",
        "ml-scoring/pipeline-duration",
        "payments-api/pipeline-success",
    ]
    success = rows["payments-api/pipeline-success"]
    assert success["evaluated_at"] == SAMPLE_END
    # The sample builds payments-api every day: a 30-day window has executions to count.
    assert success["total"] > 0
    assert success["sli"] == pytest.approx(success["good"] / success["total"])
    bad = success["total"] - success["good"]
    assert success["error_budget_remaining"] == pytest.approx(1 - bad / (0.2 * success["total"]))
    assert set(success["burn_rates"]) == {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
    table = invoke(["slo", "status"], sample_dir, **SAMPLE)
    assert "payments-api/pipeline-success" in table.stdout
    assert "BUDGET LEFT" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 100
