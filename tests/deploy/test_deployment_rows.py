"""Timbel's own deploys and rollbacks in `deployments` (source `timbel`): written by the
`deploy` job and the rollback, counted by DORA and learnt from by the risk training set, and
never counted twice beside a CI-derived row of the same deployment."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.deploy.conftest import CLUSTERS
from tests.deploy.test_deploy_job import _resources, _run
from timbel_dagster.deploy.deployment_rows import record_release, record_rollback
from timbel_dagster.deploy.dora import ORGANISATION, compute_dora
from timbel_dagster.deploy.lookup import find
from timbel_dagster.deploy.rollback import roll_back
from timbel_dagster.jobs.run_actor import acting_as
from timbel_dagster.ml.risk.deployment_data import load_delivery_frames
from timbel_dagster.ml.risk.deployment_features import deployment_features
from timbel_dagster.records.delivery import DeploymentRecord, IncidentRecord
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.read import frames
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import Deployment, Incident, Pipeline, PipelineExecution
from timbel_dagster.warehouse.store.loaders import (
    deployment_id,
    execution_id,
    pipeline_id,
    store_deployments,
    store_incidents,
)

REGISTRY = "registry.example.com/shop/api"
SHAS = {"1.4.2": "a" * 40, "1.4.3": "b" * 40, "1.4.4": "c" * 40}


def _known_builds(url: str) -> None:
    """The CI pipeline of shop-api and one build per image, naming the image it pushed."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with get_engine(url).begin() as connection:
        connection.execute(
            Pipeline.__table__.insert().values(
                id=pipeline_id("jenkins", "shop/api"), source="jenkins", ci_system="jenkins",
                name="shop/api", service="shop-api", repository=None,
            )
        )  # fmt: skip
        for number, (tag, sha) in enumerate(SHAS.items(), start=1):
            connection.execute(
                PipelineExecution.__table__.insert().values(
                    id=execution_id("jenkins", "shop/api", str(number)), source="jenkins",
                    pipeline_id=pipeline_id("jenkins", "shop/api"), external_id=str(number),
                    status="success", started_at=now, commit_sha=sha,
                    artifacts={"image": f"{REGISTRY}:{tag}"},
                )
            )  # fmt: skip


def _approved(url: str, number: int, tag: str, fast_track: bool = False) -> None:
    now = dt.datetime.now(dt.UTC)
    with get_engine(url).begin() as connection:
        connection.execute(
            DeploymentRequest.__table__.insert().values(
                id=uuid.uuid4(), number=number, service="shop-api", image=f"{REGISTRY}:{tag}",
                environment_group="prod", reason="test", requested_by="dev", status="approved",
                expires_at=now + dt.timedelta(hours=1), fast_track=fast_track,
            )
        )  # fmt: skip


def _rows(url: str) -> dict[str, dict]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(Deployment.__table__)).mappings().all()
    return {row["external_id"]: dict(row) for row in rows}


def _incidents(url: str) -> list[dict]:
    with get_engine(url).connect() as connection:
        return [dict(r) for r in connection.execute(select(Incident.__table__)).mappings()]


def test_a_deploy_writes_one_release_row(warehouse_url: str, fakes: dict, tmp_path: Path) -> None:
    _known_builds(warehouse_url)
    _approved(warehouse_url, 1, "1.4.2", fast_track=True)
    with acting_as("dev"):  # as `timbel` runs it: a UI launch would be dagster-ui
        assert _run(warehouse_url, _resources(warehouse_url, fakes, tmp_path), 1).success
    [row] = _rows(warehouse_url).values()
    assert row["source"] == "timbel" and row["external_id"] == "request-1"
    assert (row["kind"], row["status"], row["environment"]) == ("hotfix", "success", "prod")
    assert row["cluster"] is None  # three clusters: the per-cluster detail is rollout_targets
    assert (row["image"], row["version"]) == (f"{REGISTRY}:1.4.2", "1.4.2")
    assert row["commit_to"] == SHAS["1.4.2"]
    assert row["execution_id"] == execution_id("jenkins", "shop/api", "1")
    assert row["triggered_by"] == "dev" and row["completed_at"] >= row["started_at"]
    assert _incidents(warehouse_url) == []


def test_a_strategy_rollback_is_recorded_with_its_incident(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    _known_builds(warehouse_url)
    _approved(warehouse_url, 1, "1.4.2")
    resources = _resources(warehouse_url, fakes, tmp_path)
    assert _run(warehouse_url, resources, 1).success
    fakes["prod-c"].failing_images = (f"{REGISTRY}:1.4.3",)
    _approved(warehouse_url, 2, "1.4.3")
    assert not _run(warehouse_url, resources, 2, strategy="rollback_failed").success
    rows = _rows(warehouse_url)
    assert rows["request-2"]["status"] == "rolled_back"
    assert rows["request-2"]["commit_from"] == SHAS["1.4.2"]
    rollback = rows["request-2-rollback"]
    assert (rollback["kind"], rollback["status"], rollback["cluster"]) == (
        "rollback", "success", "prod-c",
    )  # fmt: skip
    assert rollback["image"] == f"{REGISTRY}:1.4.2" and rollback["commit_to"] == SHAS["1.4.2"]
    [incident] = _incidents(warehouse_url)
    assert incident["caused_by_deployment_id"] == rows["request-2"]["id"]
    assert incident["restored_by_deployment_id"] == rollback["id"]
    assert incident["opened_at"] <= incident["resolved_at"] == rollback["completed_at"]


def test_dora_and_the_risk_training_set_count_timbel_deploys_and_rollbacks(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    _known_builds(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)
    _approved(warehouse_url, 1, "1.4.2")
    assert _run(warehouse_url, resources, 1).success
    _approved(warehouse_url, 2, "1.4.3")
    assert _run(warehouse_url, resources, 2).success
    engine = get_engine(warehouse_url)
    with engine.connect() as connection:
        request = find(connection, "2")
    done = roll_back(engine, resources["kubernetes"], request, "prod-a", "sensor", "5xx", poll=0.05)
    assert done["status"] == "done"
    rows = _rows(warehouse_url)
    assert rows["request-2"]["status"] == "rolled_back"
    assert rows[f"rollback-{done['id']}"]["kind"] == "rollback"

    with engine.connect() as connection:
        dora = compute_dora(
            frames.deployments_frame(connection),
            frames.shipped_commits_frame(connection),
            frames.incidents_frame(connection),
        )
        table = deployment_features(load_delivery_frames(connection))
    [week] = [r for r in dora if r["service"] == ORGANISATION]
    assert week["deployments"] == 1  # request 1; request 2 was rolled back
    assert week["change_failure_rate"] == 0.5
    assert week["time_to_restore_hours_median"] is not None
    assert week["rework_rate"] == round(1 / 3, 4)  # the rollback
    assert table["label"].to_dict() == {
        deployment_id("timbel", "request-1"): 0,
        deployment_id("timbel", "request-2"): 1,
    }  # rollbacks are the remedy, not a training row


def test_ci_derived_rows_of_the_same_deployment_are_counted_once(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    _known_builds(warehouse_url)
    _approved(warehouse_url, 1, "1.4.2")
    assert _run(warehouse_url, _resources(warehouse_url, fakes, tmp_path), 1).success
    started = _rows(warehouse_url)["request-1"]["started_at"]

    def derived(build: str, sha: str, status: str) -> DeploymentRecord:
        return DeploymentRecord(
            external_id=f"shop/api#{build}/9", service="shop-api", environment="prod",
            cluster=None, image=None, version=sha[:12], commit_from=None, commit_to=sha,
            kind="release", status=status, started_at=started - dt.timedelta(minutes=5),
            completed_at=started, triggered_by="dev",
        )  # fmt: skip

    with get_engine(warehouse_url).begin() as connection:
        store_deployments(
            connection,
            "jenkins",
            [derived("1", SHAS["1.4.2"], "failed"), derived("3", SHAS["1.4.4"], "success")],
        )
        store_incidents(
            connection,
            "jenkins",
            [IncidentRecord("failed-deploy:1", "shop-api", "prod", "unknown", "x", started,
                            None, caused_by_deployment="shop/api#1/9")],
        )  # fmt: skip
    with get_engine(warehouse_url).connect() as connection:
        deployments = frames.deployments_frame(connection)
        incidents = frames.incidents_frame(connection)
        delivery = load_delivery_frames(connection)
    kept = {deployment_id("timbel", "request-1"), deployment_id("jenkins", "shop/api#3/9")}
    assert set(deployments["id"]) == kept  # the CI row of request 1's commit is left out
    assert set(delivery.deployments["id"]) == kept
    assert incidents.empty and delivery.incidents.empty


@pytest.mark.parametrize("times", [1, 2])
def test_rows_are_idempotent(warehouse_url: str, times: int) -> None:
    request = {
        "number": 7,
        "service": "shop-api",
        "image": f"{REGISTRY}@sha256:{'d' * 64}",
        "environment_group": "staging",
        "fast_track": False,
        "requested_by": "dev",
    }
    at = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    for _ in range(times):
        with get_engine(warehouse_url).begin() as connection:
            record_release(connection, request, "deploying", list(CLUSTERS[:1]), at, None)
            record_release(connection, request, "deployed", list(CLUSTERS[:1]), at, "ops")
            record_rollback(connection, request, "rollback-x", ["prod-a"], None, True, at, at,
                            "sensor")  # fmt: skip
    rows = _rows(warehouse_url)
    assert set(rows) == {"request-7", "rollback-x"}
    assert rows["request-7"]["version"] == "d" * 12 and rows["request-7"]["cluster"] == "prod-a"
    assert rows["request-7"]["status"] == "rolled_back"
    assert _incidents(warehouse_url) == []  # staging opens none
    assert stable_id("incidents", "timbel", "request-7") not in {
        i["id"] for i in _incidents(warehouse_url)
    }


def test_a_rollback_to_a_commit_ci_deployed_before_leaves_that_release_counted(
    warehouse_url: str,
) -> None:
    """A rollback row names the commit it restored: the CI release that first shipped that
    commit is another deployment, not a repeat of the rollback."""
    _known_builds(warehouse_url)
    now = dt.datetime.now(dt.UTC)
    earlier = now - dt.timedelta(days=3)
    request = {
        "number": 5, "service": "shop-api", "image": f"{REGISTRY}:1.4.3",
        "environment_group": "prod", "fast_track": False, "requested_by": "dev",
    }  # fmt: skip
    with get_engine(warehouse_url).begin() as connection:
        store_deployments(
            connection,
            "jenkins",
            [
                DeploymentRecord(
                    external_id="shop/api#1/9", service="shop-api", environment="prod",
                    cluster=None, image=None, version=None, commit_from=None,
                    commit_to=SHAS["1.4.2"], kind="release", status="success",
                    started_at=earlier, completed_at=earlier, triggered_by="dev",
                )
            ],
        )  # fmt: skip
        record_release(connection, request, "deploying", ["prod-a"], now, None)
        record_release(connection, request, "deployed", ["prod-a"], now, None)
        record_rollback(connection, request, "rollback-y", ["prod-a"], f"{REGISTRY}:1.4.2",
                        True, now, now, "sensor")  # fmt: skip
    assert _rows(warehouse_url)["rollback-y"]["commit_to"] == SHAS["1.4.2"]
    with get_engine(warehouse_url).connect() as connection:
        counted = set(frames.deployments_frame(connection)["id"])
        delivery = set(load_delivery_frames(connection).deployments["id"])
    expected = {
        deployment_id("jenkins", "shop/api#1/9"),
        deployment_id("timbel", "request-5"),
        deployment_id("timbel", "rollback-y"),
    }
    assert counted == expected
    assert delivery >= {deployment_id("jenkins", "shop/api#1/9")}
