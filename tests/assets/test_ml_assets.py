"""The ML assets end to end on the sample organisation, on each backend: training set, risk
model, risk scores (with a pending request), bottlenecks; then the advisor's CLI, the drift
check and the retraining triggers."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.cli.app import main
from timbel_dagster.definitions import build_definitions
from timbel_dagster.ml.cards import number
from timbel_dagster.ml.risk.advisor import RISK_CODE_VERSION
from timbel_dagster.partitions import CLUSTERS, hour_key
from timbel_dagster.resources.sample.source import SampleSource
from timbel_dagster.resources.sources import DeliverySourcesResource
from timbel_dagster.sample_load import load_sample
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest
from timbel_dagster.warehouse.schema.ml import BottleneckFinding, MlModel, RiskScore

defs = build_definitions()  # the code location, partitions from the default start

ASSETS = list(defs.assets or [])
END = dt.date(2026, 11, 1)
ML = [["ml", "risk_training_set"], ["ml", "risk_model"], ["ml", "risk_scores"]]


def _resources(url: str) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=url),
        "sources": DeliverySourcesResource(mode="sample", sample_seed=7, sample_end_date=str(END)),
    }


def _materialize(url: str, keys: list, **kwargs) -> dg.ExecuteInProcessResult:
    selection = [dg.AssetKey(k) for k in keys]
    return dg.materialize(ASSETS, resources=_resources(url), selection=selection, **kwargs)


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def _newest_green_image(url: str, service: str) -> str:
    from timbel_dagster.warehouse.schema.models import Pipeline, PipelineExecution

    with get_engine(url).connect() as connection:
        artifacts = connection.execute(
            select(PipelineExecution.artifacts)
            .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
            .where(Pipeline.service == service, PipelineExecution.status == "success")
            .order_by(PipelineExecution.started_at.desc())
            .limit(1)
        ).scalar_one()
    return f"registry.sample.invalid/{artifacts['image']}"


@pytest.fixture
def sample_warehouse(warehouse_url: str) -> str:
    load_sample(get_engine(warehouse_url), SampleSource(end_date=END, seed=7), actor="test")
    return warehouse_url


def test_risk_advisor_end_to_end(
    sample_warehouse: str, monkeypatch, tmp_path, request: pytest.FixtureRequest
) -> None:
    from timbel_dagster.settings import get_settings

    url = sample_warehouse
    monkeypatch.setenv("TIMBEL_DATABASE_URL", url)
    monkeypatch.setenv("TIMBEL_USER", "soyeon.lee")
    # The model-signing key lives in TIMBEL_HOME: one for the whole test, whatever ran before.
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    runner = CliRunner()
    image = _newest_green_image(url, "payments-api")
    created = runner.invoke(
        main,
        ["deploy", "request", "payments-api", image, "--group", "prod", "--as", "minji.kim"],
    )
    assert created.exit_code == 0, created.output
    assert "risk: not assessed (no risk_model has been trained yet" in created.output

    # The sample ends on END: assess the deployments of its last days.
    days = (dt.date.today() - END).days + 5
    result = _materialize(
        url, ML, run_config={"ops": {"ml__risk_scores": {"config": {"days": days}}}}
    )
    training = _metadata(result, "ml/risk_training_set")
    assert training["dagster/row_count"] > 1000 and 0 < training["failure_rate"] < 0.2
    evaluation = _metadata(result, "ml/risk_model")
    # The model must beat both baselines measured in the same run on the same split.
    assert evaluation["auc"] > evaluation["baseline_la_auc"]
    assert evaluation["auc"] > evaluation["baseline_rf_auc"] - 0.02
    assert (
        evaluation["recall_at_20pct_effort"]
        > evaluation["baseline_smallest_first_recall_at_20pct_effort"]
    )
    assert evaluation["rows_written"] == 1 and evaluation["model_version"] == 1
    card = evaluation["model_card"]
    assert card.startswith("### Model card: risk_model") and "**Version:** v1" in card
    assert f"{training['dagster/row_count']:,} deployments" in card
    assert f"| ROC AUC | {number(evaluation['auc'])} | lines added (LApredict) | " in card
    assert "**Training window:** 2026-" in card and "#### Known limits" in card
    # The calibration plot, the same PNG as `calibration_plot`, inside the card.
    assert "](data:image/png;base64," in card and evaluation["calibration_plot"] in card
    # The same history again: no new version (a drift or manual retrain would make one).
    again = _metadata(_materialize(url, [ML[1]]), "ml/risk_model")
    assert (again["rows_written"], again["model_version"], again["reason"]) == (0, 1, "unchanged")
    assert again["model_card"] == card  # the stored model's card, from its stored evaluation
    scores = _metadata(result, "ml/risk_scores")
    assert scores["pending_requests"] == 1 and scores["deployments"] > 0

    with get_engine(url).connect() as connection:
        risk = connection.execute(select(DeploymentRequest.risk)).scalar_one()
        model_row = connection.execute(select(MlModel.version, MlModel.code_version)).one()
        by_kind = dict(
            connection.execute(
                select(RiskScore.subject_kind, func.count()).group_by(RiskScore.subject_kind)
            ).all()
        )
    assert model_row == (1, RISK_CODE_VERSION)
    assert by_kind["request"] == 1 and by_kind["deployment"] == scores["deployments"]
    assert 0 <= risk["probability"] <= 1 and 0 <= risk["confidence"] <= 1
    assert risk["recommendation"] in ("approve", "review", "reject")
    assert len(risk["reasons"]) == 3 and len(risk["similar"]) == 5
    assert {"service", "environment", "started_at", "outcome"} <= set(risk["similar"][0])

    scored = runner.invoke(main, ["risk", "score", "1", "--json"])
    assert scored.exit_code == 0, scored.output
    assessment = json.loads(scored.output)
    assert assessment["probability"] == pytest.approx(risk["probability"])
    assert assessment["ships"]["commits"] >= 1
    # Beside the codes and numbers, the words a reviewer reads.
    assert assessment["confidence_text"].startswith("confidence ")
    assert all(
        f": {r['direction']} risk " in r["text"] or r["text"].endswith(": barely changes risk")
        for r in assessment["reasons"]
    )
    printed = runner.invoke(main, ["risk", "score", "1"])
    assert printed.exit_code == 0, printed.output
    assert assessment["reasons"][0]["text"].split(": ")[0] in printed.output
    assert "  confidence " in printed.output and "log-odds" not in printed.output

    # Thresholds come from the settings: everything at or above 0.001 is a reject.
    monkeypatch.setenv("TIMBEL_RISK_APPROVE_BELOW", "0.0005")
    monkeypatch.setenv("TIMBEL_RISK_REJECT_FROM", "0.001")
    get_settings.cache_clear()
    strict = json.loads(runner.invoke(main, ["risk", "score", "#1", "--json"]).output)
    assert strict["recommendation"] == "reject"
    get_settings.cache_clear()

    # Once a model exists, a new request is assessed as it is made.
    request = ["deploy", "request", "payments-api", image, "--group", "prod"]
    second = runner.invoke(main, [*request, "--as", "minji.kim", "--json"])
    assert second.exit_code == 0, second.output
    made = json.loads(second.output[second.output.index("{") :])
    assert made["risk"]["probability"] == pytest.approx(assessment["probability"], abs=0.05)

    unknown = runner.invoke(main, ["risk", "score", "99"])
    assert unknown.exit_code == 2 and "no deployment request '99'" in unknown.output

    shown = runner.invoke(main, ["risk", "model", "--json"])
    # The asset's metadata shows the AUC to 4 significant digits; the warehouse keeps it whole.
    stored_auc = json.loads(shown.output)["evaluation"]["auc"]
    assert stored_auc == pytest.approx(evaluation["auc"], abs=5e-4)


def test_no_model_yet_is_a_clear_error(warehouse_url: str, monkeypatch) -> None:
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    result = CliRunner().invoke(main, ["risk", "model"])
    assert result.exit_code == 2
    assert "no risk_model has been trained yet: materialize ml/risk_model" in result.output


def test_a_refused_model_is_never_unpickled_and_retraining_replaces_it(
    sample_warehouse: str, tmp_path, monkeypatch, request: pytest.FixtureRequest
) -> None:
    """A crafted, unsigned risk_model row (issue #13): a deployment request is still made,
    not assessed; the ml_retrain job's risk_model trains a signed version over it."""
    from tests.ml.test_model_store import _insert, _payload
    from timbel_dagster.ml.models.store import load_model
    from timbel_dagster.settings import get_settings

    url = sample_warehouse
    monkeypatch.setenv("TIMBEL_DATABASE_URL", url)
    monkeypatch.setenv("TIMBEL_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    marker = tmp_path / "marker"
    _insert(url, _payload(marker), None, code_version=RISK_CODE_VERSION)

    image = _newest_green_image(url, "payments-api")
    created = CliRunner().invoke(
        main,
        ["deploy", "request", "payments-api", image, "--group", "prod", "--as", "minji.kim"],
    )
    assert created.exit_code == 0, created.output
    assert (
        "risk: not assessed (model risk_model v1 was stored without a signature (before "
        "signing existed, or written outside Timbel), so it is not loaded: retrain it"
    ) in created.output

    result = _materialize(url, ML[:2])
    evaluation = _metadata(result, "ml/risk_model")
    assert (evaluation["model_version"], evaluation["rows_written"]) == (2, 1)
    with get_engine(url).connect() as connection:
        assert load_model(connection, "risk_model").version == 2
    assert not marker.exists()


def test_bottlenecks_find_the_sample_regression_and_flaky_stage(sample_warehouse: str) -> None:
    result = _materialize(sample_warehouse, [["ml", "pipeline_bottlenecks"]])
    meta = _metadata(result, "ml/pipeline_bottlenecks")
    assert meta["regressions"] >= 1 and meta["flaky_stages"] >= 1
    card = meta["model_card"]
    assert card.startswith("### Model card: pipeline_bottlenecks")
    assert f"| duration regressions found | {meta['regressions']} |" in card
    assert "duration series" in card and "Not evaluated: no baseline in this run" in card
    with get_engine(sample_warehouse).connect() as connection:
        rows = connection.execute(
            select(BottleneckFinding.pipeline, BottleneckFinding.kind, BottleneckFinding.stage)
        ).all()
    # The sample organisation's injected problems: payments-api's integration tests got
    # slower, web-frontend's e2e tests are flaky.
    assert ("payments-api/main", "regression", "integration-tests") in rows
    assert any(kind == "flaky" and stage == "e2e-tests" for _, kind, stage in rows)
    again = _materialize(sample_warehouse, [["ml", "pipeline_bottlenecks"]])
    assert _metadata(again, "ml/pipeline_bottlenecks")["dagster/row_count"] == len(rows)


def test_the_cost_forecast_carries_its_model_card(warehouse_url: str) -> None:
    """No cost yet: the card says so. Two hours of one cluster: too little for backtests,
    and the card says that, with the window and size of what it forecast from."""
    empty = _metadata(_materialize(warehouse_url, [["ml", "cost_forecast"]]), "ml/cost_forecast")
    assert "Not evaluated: no cluster cost in the warehouse yet" in empty["model_card"]
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(CLUSTERS.name, ["seoul-dev-01"])
        for hour in (
            dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC),
        ):
            result = dg.materialize(
                ASSETS,
                instance=instance,
                selection=dg.AssetSelection.groups("cluster"),
                partition_key=f"seoul-dev-01|{hour_key(hour)}",
                resources=_resources(warehouse_url)
                | {"sources": DeliverySourcesResource(mode="sample")},
            )
            assert result.success
    meta = _metadata(_materialize(warehouse_url, [["ml", "cost_forecast"]]), "ml/cost_forecast")
    card = meta["model_card"]
    assert card.startswith("### Model card: cost_forecast (total cost)")
    assert "**Training window:** 2026-11-01 09:00 to 2026-11-01 10:00 (UTC)" in card
    assert "**Data size:** 2 hours" in card
    assert "Not evaluated: 2 hours of history: fewer than 3 backtests fit" in card
