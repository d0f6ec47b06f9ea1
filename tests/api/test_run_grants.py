"""POST /api/v1/rollbacks, POST /api/v1/tenants, DELETE /api/v1/tenants/{name}: operations
asks, the API writes a run grant for the job's exact config (audited with the real actor)
and answers 202; it never runs anything. Refusals change nothing."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert, select

from tests.api.conftest import audit_events, bearer, secret_for
from timbel_dagster.deploy import grants
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, RolloutTarget, Tenant
from timbel_dagster.warehouse.schema.identity import RunGrant

T0 = dt.datetime(2026, 12, 5, 9, tzinfo=dt.UTC)
ROLLBACK = {"service": "shop-api", "cluster": "prod-a", "reason": "5xx at 30 %"}
TENANT = {"name": "shop", "cpu": "8", "memory": "16Gi", "users": ["dev", "lead"],
          "groups": ["dev"]}  # fmt: skip


def _as(engine, user: str) -> dict[str, str]:
    return bearer(secret_for(engine, user))


def _grants(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(RunGrant.__table__)).mappings().all()


@pytest.fixture
def deployed(engine) -> int:
    """Request #7 of shop-api, rolled out to prod-a."""
    ident = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(DeploymentRequest).values(
                id=ident, number=7, service="shop-api", image="r/shop:1", environment_group="prod",
                reason="", requested_by="dev", status="deployed", expires_at=T0, created_at=T0,
                updated_at=T0,
            )
        )  # fmt: skip
        connection.execute(
            insert(RolloutTarget).values(request_id=ident, cluster="prod-a", status="succeeded")
        )
    return 7


def test_operations_asks_for_a_rollback_and_gets_a_grant(client, engine, deployed) -> None:
    response = client.post("/api/v1/rollbacks", json=ROLLBACK, headers=_as(engine, "ops"))
    assert response.status_code == 202, response.text
    body = response.json()
    config = body["run_config"]["ops"]["roll_back_deployment"]["config"]
    assert (body["job"], body["request"], config["request"]) == ("rollback", 7, 7)
    assert config["trigger"] == "ops" and config["cluster"] == "prod-a"
    [row] = _grants(engine)
    assert str(row["id"]) == body["grant"] and row["actor"] == "ops"
    assert row["config_sha256"] == grants.config_sha256(body["run_config"])
    assert row["used_at"] is None
    with engine.connect() as connection:
        [open_grant] = grants.open_grants(connection)
    assert open_grant["run_config"] == body["run_config"]  # what the sensor will launch
    [(actor, target, _)] = audit_events(engine, "run.grant")
    assert (actor, target) == ("ops", f"grant {body['grant']}")


@pytest.mark.parametrize("user", ["dev", "lead", "viewer"])
def test_only_operations_may_ask_for_a_rollback(client, engine, deployed, user) -> None:
    response = client.post("/api/v1/rollbacks", json=ROLLBACK, headers=_as(engine, user))
    assert response.status_code == 403
    assert _grants(engine) == [] and audit_events(engine, "run.grant") == []
    [(actor, _, details)] = audit_events(engine, "api.refused")
    assert actor == user and details["action"] == "rollbacks.request"


def test_a_rollback_of_nothing_rolled_out_is_404(client, engine, deployed) -> None:
    body = ROLLBACK | {"cluster": "prod-z"}
    response = client.post("/api/v1/rollbacks", json=body, headers=_as(engine, "ops"))
    assert response.status_code == 404
    assert response.json()["detail"] == "no deployment of shop-api rolled out to prod-z"
    assert _grants(engine) == []


def test_a_rollback_without_a_reason_is_422(client, engine, deployed) -> None:
    body = {k: v for k, v in ROLLBACK.items() if k != "reason"}
    response = client.post("/api/v1/rollbacks", json=body, headers=_as(engine, "ops"))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "reason"]]


def test_a_rollback_naming_another_services_request_is_422(client, engine, deployed) -> None:
    body = ROLLBACK | {"service": "pay-api", "request": 7}
    response = client.post("/api/v1/rollbacks", json=body, headers=_as(engine, "ops"))
    assert response.status_code == 422 and "is of shop-api" in response.json()["detail"]
    assert _grants(engine) == []


@pytest.fixture
def history(engine, deployed) -> None:
    """Before #7: #5 (r/shop:0.9) rolled out to prod-a, #6 (r/shop:0.95) failed there."""
    with engine.begin() as connection:
        for number, image, status in ((5, "r/shop:0.9", "succeeded"), (6, "r/shop:0.95", "failed")):
            ident = uuid.uuid4()
            connection.execute(
                insert(DeploymentRequest).values(
                    id=ident, number=number, service="shop-api", image=image,
                    environment_group="prod", reason="", requested_by="dev", status="deployed",
                    expires_at=T0, created_at=T0, updated_at=T0,
                )
            )  # fmt: skip
            connection.execute(
                insert(RolloutTarget).values(request_id=ident, cluster="prod-a", status=status)
            )


@pytest.mark.parametrize("to_revision", ["5", "#5", "r/shop:0.9", "0.9"])
def test_a_rollback_to_a_chosen_revision_carries_it_in_the_grant(
    client, engine, history, to_revision: str
) -> None:
    body = ROLLBACK | {"to_revision": to_revision}
    response = client.post("/api/v1/rollbacks", json=body, headers=_as(engine, "ops"))
    assert response.status_code == 202, response.text
    config = response.json()["run_config"]["ops"]["roll_back_deployment"]["config"]
    assert (config["request"], config["to_request"], config["to_image"]) == (7, 5, "r/shop:0.9")
    [row] = _grants(engine)
    assert row["config_sha256"] == grants.config_sha256(response.json()["run_config"])
    [(_, _, details)] = audit_events(engine, "run.grant")
    assert details["run_config"] == response.json()["run_config"]


@pytest.mark.parametrize(
    ("to_revision", "status", "message"),
    [
        ("6", 422, "to_revision: request #6 of shop-api is not a successful deployment in prod-a "
                   "(its rollout there is failed)"),
        ("7", 422, "to_revision: request #7 is not earlier than request #7"),
        ("9.9", 422, "to_revision: no deployment of shop-api has the image, tag or digest '9.9'"),
        ("99", 404, "to_revision: no deployment request #99"),
    ],
)  # fmt: skip
def test_a_rollback_to_a_revision_that_does_not_qualify_is_refused_and_grants_nothing(
    client, engine, history, to_revision: str, status: int, message: str
) -> None:
    body = ROLLBACK | {"to_revision": to_revision}
    response = client.post("/api/v1/rollbacks", json=body, headers=_as(engine, "ops"))
    assert response.status_code == status, response.text
    if status == 422:
        [error] = response.json()["errors"]
        assert error["loc"] == ["body", "to_revision"] and error["msg"].startswith(message)
    else:
        assert response.json()["detail"] == message
    assert _grants(engine) == [] and audit_events(engine, "run.grant") == []


def test_a_blank_to_revision_is_422(client, engine, history) -> None:
    body = ROLLBACK | {"to_revision": "  "}
    response = client.post("/api/v1/rollbacks", json=body, headers=_as(engine, "ops"))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "to_revision"]]
    assert _grants(engine) == []


def test_operations_asks_for_a_tenant(client, engine) -> None:
    response = client.post("/api/v1/tenants", json=TENANT, headers=_as(engine, "ops"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["job"] == "provision_tenant"
    assert body["run_config"]["ops"]["provision"]["config"]["users"] == ["dev", "lead"]
    [row] = _grants(engine)
    assert row["job"] == "provision_tenant" and row["actor"] == "ops"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cpu": "8 cores"}, "cpu '8 cores' is not a Kubernetes quantity"),
        ({"users": ["nobody"]}, "nobody"),
        ({"groups": []}, "name the clusters or the groups"),
    ],
)
def test_a_bad_tenant_is_422_and_grants_nothing(client, engine, change, message) -> None:
    response = client.post("/api/v1/tenants", json=TENANT | change, headers=_as(engine, "ops"))
    assert response.status_code == 422 and message in response.json()["detail"]
    assert _grants(engine) == []


def test_a_developer_may_not_ask_for_a_tenant(client, engine) -> None:
    response = client.post("/api/v1/tenants", json=TENANT, headers=_as(engine, "dev"))
    assert response.status_code == 403 and _grants(engine) == []


def test_deleting_a_tenant_is_granted_and_an_unknown_one_is_404(client, engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(Tenant).values(
                id=uuid.uuid4(), name="shop", cpu_cores=8.0, memory_bytes=16e9, clusters=["a"],
                status="provisioned", created_by="ops", created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
    missing = client.delete("/api/v1/tenants/nope", headers=_as(engine, "ops"))
    assert missing.status_code == 404 and _grants(engine) == []
    refused = client.delete("/api/v1/tenants/shop", headers=_as(engine, "lead"))
    assert refused.status_code == 403 and _grants(engine) == []
    response = client.delete("/api/v1/tenants/shop", headers=_as(engine, "ops"))
    assert response.status_code == 202
    assert response.json()["run_config"] == {"ops": {"remove_tenant": {"config": {"name": "shop"}}}}
    [row] = _grants(engine)
    assert row["job"] == "delete_tenant"
