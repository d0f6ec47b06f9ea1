"""The guarded jobs (issue 15, item 7): `rollback` runs only by claiming a run grant for its
exact config, once; `deploy` only for an approved request whose service and image the
config matches; a refused run changes nothing and is audited as `run.refused` with the run
id. `run_grant_sensor` launches each open grant once; the health sensor grants rollbacks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select, update

from tests.deploy.test_deploy_job import _approved, _resources, _run
from tests.deploy.test_requests import IMAGE
from timbel_dagster.deploy import grants
from timbel_dagster.deploy.lookup import find
from timbel_dagster.jobs.rollback import rollback
from timbel_dagster.sensors.grants import ROLLBACK_SERVICE_TAG, grant_requests, run_grant_sensor
from timbel_dagster.sensors.health import grant_rollbacks
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest, Rollback
from timbel_dagster.warehouse.schema.identity import RunGrant
from timbel_dagster.warehouse.schema.models import AuditEvent


def _config(number: int, reason: str = "errors") -> dict:
    config = {"request": number, "cluster": "prod-a", "reason": reason, "dry_run": True}
    return {"ops": {"roll_back_deployment": {"config": config}}}


def _grant(url: str, run_config: dict, actor: str = "ops", **options) -> str:
    with get_engine(url).begin() as connection:
        ident, _ = grants.grant_run(connection, "rollback", run_config, actor, **options)
    return str(ident)


def _launch(resources: dict, run_config: dict, tags: dict | None = None):
    return rollback.execute_in_process(
        run_config=run_config, resources=resources, tags=tags or {}, raise_on_error=False
    )


def _events(url: str, action: str) -> list:
    with get_engine(url).connect() as connection:
        return connection.execute(
            select(AuditEvent.actor, AuditEvent.target, AuditEvent.details)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        ).all()


def _failure(result) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.user_failure_data.description


@pytest.fixture
def deployed(warehouse_url: str, fakes: dict, tmp_path: Path) -> tuple[dict, dict]:
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    assert _run(warehouse_url, resources, number).success
    with get_engine(warehouse_url).connect() as connection:
        return resources, find(connection, str(number))


def test_canonical_config_hash_ignores_key_order() -> None:
    assert grants.config_sha256({"a": 1, "b": {"c": 2}}) == grants.config_sha256(
        {"b": {"c": 2}, "a": 1}
    )
    assert grants.config_sha256({"a": 1}) != grants.config_sha256({"a": 2})


def test_a_granted_rollback_runs_once_as_the_grants_actor(warehouse_url: str, deployed) -> None:
    resources, request = deployed
    config = _config(request["number"])
    grant = _grant(warehouse_url, config, request_number=request["number"])
    first = _launch(resources, config)
    assert first.success, _failure(first)
    with get_engine(warehouse_url).connect() as connection:
        used = connection.execute(select(RunGrant.used_at, RunGrant.run_id)).one()
        trigger = connection.execute(select(Rollback.trigger)).scalar_one()
    assert used.used_at is not None and used.run_id == first.run_id
    assert trigger == "ops"
    [claimed] = _events(warehouse_url, "run.claim")
    assert claimed.actor == "ops" and claimed.details["grant"] == grant

    second = _launch(resources, config)  # the same config again: the grant is spent
    assert not second.success
    assert _failure(second) == (
        f"rollback refused: the run grant for this config was used by run {first.run_id} already"
    )
    [refused] = _events(warehouse_url, "run.refused")
    assert refused.target == f"run {second.run_id}"
    assert refused.details["run"] == second.run_id and "used by run" in refused.details["reason"]


def test_a_made_up_or_altered_config_is_refused_and_changes_nothing(
    warehouse_url: str, deployed, fakes: dict
) -> None:
    resources, request = deployed
    _grant(warehouse_url, _config(request["number"], reason="errors"))
    patches = sum(1 for f in fakes.values() for m, _, _ in f.requests if m == "PATCH")
    altered = _launch(resources, _config(request["number"], reason="because"),
                      tags={"timbel/actor": "admin"})  # fmt: skip
    assert not altered.success
    assert _failure(altered).startswith("rollback refused: no run grant for rollback")
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(Rollback.id)).first() is None
        assert connection.execute(select(RunGrant.used_at)).scalar_one() is None
    assert sum(1 for f in fakes.values() for m, _, _ in f.requests if m == "PATCH") == patches
    [refused] = _events(warehouse_url, "run.refused")
    assert refused.actor == "dagster-ui" and refused.details["unverified_claim"] == "admin"


def test_an_expired_grant_is_refused(warehouse_url: str, deployed) -> None:
    resources, request = deployed
    config = _config(request["number"])
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    _grant(warehouse_url, config, now=long_ago)
    result = _launch(resources, config)
    assert not result.success and "expired at" in _failure(result)


def test_the_grant_sensor_launches_each_open_grant_once(warehouse_url: str, deployed) -> None:
    resources, request = deployed
    config = _config(request["number"])
    grant = _grant(warehouse_url, config)
    with get_engine(warehouse_url).connect() as connection:
        before = connection.execute(select(AuditEvent.id)).all()
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"warehouse": resources["warehouse"]}
    )
    [planned] = run_grant_sensor(context)
    assert (planned.run_key, planned.job_name) == (grant, "rollback")
    assert planned.run_config == config and planned.tags["timbel/grant"] == grant
    # The service it rolls back, which the run queue allows one rollback of at a time.
    assert planned.tags[ROLLBACK_SERVICE_TAG] == request["service"]
    # The sensor only reads: launching is Dagster's, claiming is the run's.
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(AuditEvent.id)).all() == before
    assert _launch(resources, planned.run_config).success
    assert isinstance(run_grant_sensor(context), dg.SkipReason)


def test_a_grant_whose_recorded_config_was_altered_is_not_launched(
    warehouse_url: str, deployed
) -> None:
    _, request = deployed
    _grant(warehouse_url, _config(request["number"]))
    with get_engine(warehouse_url).begin() as connection:
        connection.execute(update(RunGrant).values(config_sha256="0" * 64))
        assert grants.open_grants(connection) == []


def test_the_health_sensor_grants_a_rollback_once_per_breach(warehouse_url: str, deployed) -> None:
    _, request = deployed
    planned = dg.RunRequest(run_key="rollback:x:prod-a:img", run_config=_config(request["number"]))
    engine = get_engine(warehouse_url)
    assert grant_rollbacks(engine, [planned]) == 1
    assert grant_rollbacks(engine, [planned]) == 0  # the breach lasts: no second grant
    with engine.connect() as connection:
        [(actor, job)] = connection.execute(select(RunGrant.actor, RunGrant.job)).all()
        [open_grant] = grants.open_grants(connection)
    assert (actor, job) == ("deployment_health_sensor", "rollback")
    assert open_grant["run_config"] == planned.run_config


def test_deploy_refuses_a_request_that_is_not_approved(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    engine = get_engine(warehouse_url)
    with engine.begin() as connection:
        connection.execute(update(DeploymentRequest).values(status="pending"))
    result = _run(warehouse_url, resources, number)
    assert not result.success
    assert _failure(result) == (
        f"deploy refused: request #{number} is pending: only an approved request is rolled out"
    )
    [refused] = _events(warehouse_url, "run.refused")
    assert refused.details["run"] == result.run_id and refused.details["job"] == "deploy"
    assert _events(warehouse_url, "deploy.start") == []


def test_deploy_refuses_a_config_naming_another_image(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    result = _run(warehouse_url, resources, number, image=IMAGE + "-evil")
    assert not result.success and "was approved for" in _failure(result)
    assert _events(warehouse_url, "deploy.start") == []
    matching = _run(warehouse_url, resources, number, image=IMAGE, service="shop-api")
    assert matching.success
    again = _run(warehouse_url, resources, number)  # rolled out: its approval is spent
    assert not again.success and "is deployed" in _failure(again)


OLDER = "registry.example.com/shop/api:1.3.0"
NEWER = "registry.example.com/shop/api:1.4.0"


@pytest.fixture
def with_history(warehouse_url: str, fakes: dict, tmp_path: Path) -> tuple[dict, dict]:
    """#1 (OLDER) and #2 (NEWER) rolled out to prod-a before #3, deployed by the deploy job:
    the last known-good image of #3 is NEWER."""
    import uuid

    from sqlalchemy import insert

    from timbel_dagster.warehouse.schema.deploy import RolloutTarget

    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with get_engine(warehouse_url).begin() as connection:
        for number, image in ((1, OLDER), (2, NEWER)):
            ident = uuid.uuid4()
            connection.execute(
                insert(DeploymentRequest).values(
                    id=ident, number=number, service="shop-api", image=image,
                    environment_group="prod", reason="", requested_by="dev", status="deployed",
                    expires_at=at, created_at=at, updated_at=at,
                )
            )  # fmt: skip
            connection.execute(
                insert(RolloutTarget).values(request_id=ident, cluster="prod-a", status="succeeded")
            )
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    assert number == 3 and _run(warehouse_url, resources, number).success
    with get_engine(warehouse_url).connect() as connection:
        return resources, find(connection, str(number))


def _chosen(url: str, request: dict, to_revision: str) -> dict:
    from timbel_dagster.deploy.launch import grant_rollback

    granted = grant_rollback(get_engine(url), "ops", "shop-api", "prod-a", "5xx",
                             request=request["number"], to_revision=to_revision)  # fmt: skip
    return granted["run_config"]


def _image(fake) -> str:
    return fake.get("Deployment", "shop-api", "shop")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]


def test_a_rollback_to_a_chosen_revision_deploys_that_revision(
    warehouse_url: str, with_history, fakes: dict
) -> None:
    resources, request = with_history
    config = _chosen(warehouse_url, request, "1")
    result = _launch(resources, config)
    assert result.success, _failure(result)
    assert _image(fakes["prod-a"]) == OLDER  # not NEWER, the last known-good image
    with get_engine(warehouse_url).connect() as connection:
        row = connection.execute(select(Rollback.__table__)).mappings().one()
    assert (row["status"], row["from_image"], row["to_image"]) == ("done", IMAGE, OLDER)
    assert row["details"]["to_request"] == 1
    [event] = _events(warehouse_url, "deploy.rollback")
    assert (event.details["to"], event.details["to_request"]) == (OLDER, 1)


def test_a_chosen_revision_rolled_back_from_since_the_grant_is_refused_by_the_job(
    warehouse_url: str, with_history, fakes: dict
) -> None:
    from timbel_dagster.warehouse.schema.deploy import RolloutTarget

    resources, request = with_history
    config = _chosen(warehouse_url, request, OLDER)
    assert config["ops"]["roll_back_deployment"]["config"]["to_request"] == 1
    with get_engine(warehouse_url).begin() as connection:
        first = connection.execute(
            select(DeploymentRequest.id).where(DeploymentRequest.number == 1)
        ).scalar_one()
        connection.execute(
            update(RolloutTarget)
            .where(RolloutTarget.request_id == first)
            .values(status="rolled_back")
        )
    patches = sum(1 for m, _, _ in fakes["prod-a"].requests if m == "PATCH")
    result = _launch(resources, config)
    assert not result.success
    assert _failure(result) == (
        "rollback refused: to_revision: request #1 of shop-api is not a successful deployment "
        "in prod-a (its rollout there is rolled_back)"
    )
    assert sum(1 for m, _, _ in fakes["prod-a"].requests if m == "PATCH") == patches
    assert _image(fakes["prod-a"]) == IMAGE
    with get_engine(warehouse_url).connect() as connection:
        assert connection.execute(select(Rollback.id)).first() is None
    [refused] = _events(warehouse_url, "run.refused")
    assert refused.details["run"] == result.run_id and "rolled_back" in refused.details["reason"]


def test_only_a_rollback_of_a_known_request_is_tagged_with_its_service(
    warehouse_url: str, deployed
) -> None:
    _, request = deployed
    known = _grant(warehouse_url, _config(request["number"]))
    unknown = _grant(warehouse_url, _config(request["number"] + 1000))
    with get_engine(warehouse_url).connect() as connection:
        open_ = grants.open_grants(connection)
        services = grants.rollback_services(connection, open_)
    assert services == {known: request["service"]}
    tags = {r.run_key: r.tags for r in grant_requests(open_, services)}
    assert tags[known][ROLLBACK_SERVICE_TAG] == request["service"]
    assert ROLLBACK_SERVICE_TAG not in tags[unknown]  # its run is refused anyway
