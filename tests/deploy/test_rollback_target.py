"""A rollback to a chosen revision (`deploy.rollback_target`, `launch.grant_rollback`): which
past deployment `to_revision` names (number, image, tag, digest), what may be rolled back
to, and that a refused target grants nothing."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from timbel_dagster.deploy import rollback_target
from timbel_dagster.deploy.launch import grant_rollback
from timbel_dagster.deploy.rollback_target import RevisionNotFoundError, RevisionRefusedError
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, RolloutTarget
from timbel_dagster.warehouse.schema.identity import RunGrant

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
REPO = "registry.example.com/shop/api"
DIGEST = "sha256:" + "ab" * 32
# number -> (service, image, {cluster: rollout status})
HISTORY = {
    1: ("shop-api", f"{REPO}:1.3.0", {"prod-a": "succeeded"}),
    2: ("shop-api", f"{REPO}@{DIGEST}", {"prod-a": "succeeded", "prod-b": "failed"}),
    3: ("shop-api", f"{REPO}:1.4.0", {"prod-a": "rolled_back"}),
    4: ("pay-api", "registry.example.com/pay/api:2.0", {"prod-a": "succeeded"}),
    5: ("shop-api", f"{REPO}:1.3.0", {"prod-b": "succeeded"}),
    6: ("shop-api", f"{REPO}:1.5.0", {"prod-a": "succeeded"}),  # the one rolled back
    7: ("shop-api", f"{REPO}:1.6.0", {"prod-a": "succeeded"}),  # newer than it
}


@pytest.fixture
def engine(warehouse_url: str) -> Any:
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        for number, (service, image, targets) in HISTORY.items():
            ident = uuid.uuid4()
            connection.execute(
                insert(DeploymentRequest).values(
                    id=ident, number=number, service=service, image=image,
                    environment_group="prod", reason="", requested_by="dev", status="deployed",
                    expires_at=T0, created_at=T0, updated_at=T0,
                )
            )  # fmt: skip
            for cluster, status in targets.items():
                connection.execute(
                    insert(RolloutTarget).values(request_id=ident, cluster=cluster, status=status)
                )
    return engine


def _resolve(engine: Any, to_revision: str, cluster: str = "prod-a", number: int = 6) -> dict:
    with engine.connect() as connection:
        rolled_back = connection.execute(
            select(DeploymentRequest.__table__).where(DeploymentRequest.number == number)
        ).mappings().one()  # fmt: skip
        return rollback_target.resolve(connection, rolled_back, cluster, to_revision)


@pytest.mark.parametrize(
    ("to_revision", "number", "image"),
    [
        ("1", 1, f"{REPO}:1.3.0"),
        ("#2", 2, f"{REPO}@{DIGEST}"),
        (f"{REPO}:1.3.0", 1, f"{REPO}:1.3.0"),
        ("1.3.0", 1, f"{REPO}:1.3.0"),  # a tag alone: the newest deployment with it
        (DIGEST, 2, f"{REPO}@{DIGEST}"),  # a digest alone
        (" 1 ", 1, f"{REPO}:1.3.0"),
    ],
)
def test_to_revision_names_a_past_successful_deployment(
    engine, to_revision: str, number: int, image: str
) -> None:
    assert _resolve(engine, to_revision) == {"request": number, "image": image}


@pytest.mark.parametrize(
    ("to_revision", "cluster", "message"),
    [
        ("4", "prod-a", "to_revision: request #4 is of pay-api, not shop-api"),
        ("7", "prod-a", "to_revision: request #7 is not earlier than request #6, the one being"),
        ("6", "prod-a", "to_revision: request #6 is not earlier than request #6"),
        ("3", "prod-a", "to_revision: request #3 of shop-api is not a successful deployment in "
                        "prod-a (its rollout there is rolled_back)"),
        ("2", "prod-b", "to_revision: request #2 of shop-api is not a successful deployment in "
                        "prod-b (its rollout there is failed)"),
        ("1", "prod-c", "to_revision: request #1 of shop-api was not rolled out to prod-c"),
        ("1.4.0", "prod-a", "to_revision '1.4.0': request #3 of shop-api is not a successful"),
        ("9.9.9", "prod-a", "to_revision: no deployment of shop-api has the image, tag or "
                            "digest '9.9.9'"),
        ("1.5.0", "prod-a", "to_revision '1.5.0': request #6 is not earlier than request #6"),
        ("  ", "prod-a", "to_revision is empty"),
    ],
)  # fmt: skip
def test_anything_else_is_refused_naming_the_field(
    engine, to_revision: str, cluster: str, message: str
) -> None:
    with pytest.raises(RevisionRefusedError) as refused:
        _resolve(engine, to_revision, cluster)
    assert str(refused.value).startswith(message)


def test_a_request_number_that_does_not_exist_is_not_found(engine) -> None:
    with pytest.raises(RevisionNotFoundError, match="to_revision: no deployment request #99"):
        _resolve(engine, "99")


def test_same_image_as_the_rolled_back_one_is_refused(engine) -> None:
    # #5 has #1's image; rolling #5 back in prod-b to #1 would change nothing there.
    with pytest.raises(RevisionRefusedError, match=r"request #1 has the image being rolled back"):
        _resolve(engine, "1", "prod-b", number=5)


def test_the_grant_carries_the_chosen_revision_and_a_refused_one_grants_nothing(
    engine,
) -> None:
    granted = grant_rollback(engine, "ops", "shop-api", "prod-a", "5xx", request=6,
                             to_revision="1.3.0")  # fmt: skip
    config = granted["run_config"]["ops"]["roll_back_deployment"]["config"]
    assert (config["request"], config["to_request"], config["to_image"]) == (6, 1, f"{REPO}:1.3.0")
    default = grant_rollback(engine, "ops", "shop-api", "prod-a", "5xx", request=6)
    assert "to_request" not in default["run_config"]["ops"]["roll_back_deployment"]["config"]
    for bad in ("4", "99"):
        with pytest.raises((RevisionRefusedError, RevisionNotFoundError)):
            grant_rollback(engine, "ops", "shop-api", "prod-a", "5xx", request=6, to_revision=bad)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(RunGrant)).scalar() == 2


def test_the_job_recheck_needs_both_and_the_granted_image(engine) -> None:
    with engine.connect() as connection:
        rolled_back = connection.execute(
            select(DeploymentRequest.__table__).where(DeploymentRequest.number == 6)
        ).mappings().one()  # fmt: skip
        rollback_target.recheck(connection, rolled_back, "prod-a", 1, f"{REPO}:1.3.0")
        with pytest.raises(RevisionRefusedError, match="needs both to_request and to_image"):
            rollback_target.recheck(connection, rolled_back, "prod-a", 1, None)
        with pytest.raises(RevisionRefusedError, match=r"request #1 deployed .*:1.3.0, not x"):
            rollback_target.recheck(connection, rolled_back, "prod-a", 1, "x")


def test_cli_deploy_rollback_to_a_revision(
    engine, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from timbel_dagster.cli.app import main
    from timbel_dagster.warehouse.schema.models import AuditEvent, User

    with engine.begin() as connection:
        connection.execute(insert(User), [
            {"id": uuid.uuid4(), "source": "test", "name": n, "role": r, "team": "shop"}
            for n, r in (("ops", "operations"), ("dev", "developer"))
        ])  # fmt: skip
    monkeypatch.setenv("TIMBEL_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("TIMBEL_USER", "ops")

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["deploy", "rollback", "shop-api", *args])

    base = ("--cluster", "prod-a", "--reason", "5xx", "--request", "6")
    done = run(*base, "--to", "1.3.0")
    assert done.exit_code == 0, done.output
    assert done.output.startswith(
        f"rollback of shop-api in prod-a (request #6) to request #1 ({REPO}:1.3.0) granted: grant "
    )
    as_json = run(*base, "--to", "#2", "--json")
    config = json.loads(as_json.output)["run_config"]["ops"]["roll_back_deployment"]["config"]
    assert (config["to_request"], config["to_image"]) == (2, f"{REPO}@{DIGEST}")
    bad = run(*base, "--to", "3")
    assert bad.exit_code == 2
    assert "to_revision: request #3 of shop-api is not a successful deployment" in bad.output
    developer = run(*base, "--to", "1", "--as", "dev")
    assert developer.exit_code == 2
    assert "rollbacks.request needs operations or admin" in developer.output
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(RunGrant)).scalar() == 2
        refused = connection.execute(
            select(AuditEvent.actor).where(AuditEvent.action == "rollbacks.request.refused")
        ).scalar_one()
    assert refused == "dev"
