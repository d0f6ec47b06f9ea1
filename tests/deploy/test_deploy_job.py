"""The `deploy` job against three stateful loopback Kubernetes API servers: parallel
rollout, status rows, and each strategy when a cluster fails."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import select

from tests.deploy.conftest import CLUSTERS, OLD, TOKEN_ENV
from tests.deploy.known import know
from tests.deploy.test_requests import IMAGE, PEOPLE
from tests.fakes.kubernetes_server import FakeKubernetes
from tests.security.findings import ALPINE_DIGEST, CLEAN, store
from timbel_dagster.bindings.notifier import NotifierResource
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.jobs.deploy import deploy
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, Rollback, RolloutTarget
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.store.upsert import bulk_upsert


def _resources(url: str, fakes: dict, tmp_path: Path) -> dict[str, Any]:
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(
        "clusters:\n"
        + "".join(
            f"  - {{name: {n}, group: prod, api_url: '{f.url}', token_env: {TOKEN_ENV}}}\n"
            for n, f in fakes.items()
        )
        + "  - {name: dev-a, group: dev, api_url: 'http://127.0.0.1:9', "
        + f"token_env: {TOKEN_ENV}}}\n"
    )
    return {
        "warehouse": WarehouseResource(database_url=url),
        "kubernetes": KubernetesResource(clusters_file=str(clusters), timeout_seconds=5),
        "notifier": NotifierResource(database_url=url),
    }


def _approved(url: str) -> int:
    engine = get_engine(url)
    with engine.begin() as connection:
        bulk_upsert(
            connection,
            User.__table__,
            [
                {"id": stable_id("users", n), "source": "test", "name": n, "display_name": n,
                 "email": None, "role": r, "team": t, "slack_id": None}
                for n, r, t in PEOPLE
            ],
            ["name"],
        )  # fmt: skip
    know(url, "shop-api", {IMAGE: ALPINE_DIGEST})
    store(url, CLEAN, IMAGE)  # scanned clean: prod lets it through without an approval chain
    chains = {"dev": (), "staging": (), "prod": ()}
    made = Requests(engine, chains, dt.timedelta(hours=1)).request(
        "dev", "shop-api", IMAGE, "prod", "x"
    )
    return made["number"]


def _run(url: str, resources: dict, number: int, **config: Any) -> dg.ExecuteInProcessResult:
    settings = {"request": number, "poll_seconds": 0.05, "timeout_seconds": 10} | config
    return deploy.execute_in_process(
        run_config={"ops": {"plan_rollout": {"config": settings}}},
        resources=resources,
        raise_on_error=False,
    )


def _targets(url: str) -> dict[str, str]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(RolloutTarget.cluster, RolloutTarget.status)).all()
    return dict(rows)


def _status(url: str) -> str:
    with get_engine(url).connect() as connection:
        return connection.execute(select(DeploymentRequest.status)).scalar_one()


def _image(fake: FakeKubernetes) -> str:
    deployment = fake.get("Deployment", "shop-api", "shop")
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_rolls_out_to_every_cluster_of_the_group(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    number = _approved(warehouse_url)
    result = _run(warehouse_url, _resources(warehouse_url, fakes, tmp_path), number)
    assert result.success
    assert _targets(warehouse_url) == dict.fromkeys(CLUSTERS, "succeeded")  # not dev-a
    assert _status(warehouse_url) == "deployed"
    assert {_image(f) for f in fakes.values()} == {IMAGE}
    messages = [e.message for e in result.all_events if e.event_type_value == "LOGS_CAPTURED"]
    assert messages is not None
    again = _run(warehouse_url, _resources(warehouse_url, fakes, tmp_path), number)
    assert not again.success  # a deployed request is not rolled out twice


@pytest.mark.parametrize(
    ("strategy", "images", "targets", "status"),
    [
        ("rollback_failed", [IMAGE, IMAGE, OLD], ["succeeded", "succeeded", "rolled_back"],
         "rolled_back"),
        ("rollback_all", [OLD, OLD, OLD], ["rolled_back"] * 3, "rolled_back"),
        ("halt", [IMAGE, IMAGE, IMAGE], ["succeeded", "succeeded", "halted"], "failed"),
    ],
)  # fmt: skip
def test_strategies_when_one_cluster_fails(
    warehouse_url: str, fakes: dict, tmp_path: Path, strategy, images, targets, status
) -> None:
    fakes["prod-c"].failing_images = (IMAGE,)
    number = _approved(warehouse_url)
    result = _run(
        warehouse_url, _resources(warehouse_url, fakes, tmp_path), number, strategy=strategy
    )
    assert not result.success
    assert _targets(warehouse_url) == dict(zip(CLUSTERS, targets, strict=True))
    assert _status(warehouse_url) == status
    assert [_image(fakes[c]) for c in CLUSTERS] == images
    with get_engine(warehouse_url).connect() as connection:
        rollbacks = connection.execute(select(Rollback.cluster, Rollback.status)).all()
    expected = {"rollback_failed": ["prod-c"], "rollback_all": list(CLUSTERS), "halt": []}
    assert sorted(c for c, _ in rollbacks) == expected[strategy]
    assert all(s == "done" for _, s in rollbacks)


def test_only_approved_requests_roll_out(warehouse_url: str, fakes: dict, tmp_path: Path) -> None:
    _approved(warehouse_url)
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(DeploymentRequest.__table__.update().values(status="pending"))
    result = _run(warehouse_url, _resources(warehouse_url, fakes, tmp_path), 1)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "request #1 is pending: only an approved request is rolled out" in str(
        failure.event_specific_data.error
    )
    assert _targets(warehouse_url) == {}


def test_a_ui_launch_is_audited_as_dagster_ui_with_the_claim(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    """Issue #13, finding 7: the `actor` a Launchpad config (or a `timbel/actor` tag) names is
    only a claim: the rollout is recorded as launched from the UI."""
    from timbel_dagster.warehouse.schema.models import AuditEvent, Deployment

    number = _approved(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)
    assert _run(warehouse_url, resources, number, actor="soyeon.lee").success
    with get_engine(warehouse_url).connect() as connection:
        events = connection.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.details)
            .where(AuditEvent.action.in_(["deploy.start", "deploy.finish"]))
            .order_by(AuditEvent.id)
        ).all()
        triggered_by = connection.execute(select(Deployment.triggered_by)).scalars().all()
    assert [(e.actor, e.action) for e in events] == [
        ("dagster-ui", "deploy.start"),
        ("dagster-ui", "deploy.finish"),
    ]
    assert events[0].details["unverified_claim"] == "soyeon.lee"
    assert events[0].details["launched_from"] == "dagster-ui"
    assert set(triggered_by) == {"dagster-ui"}
