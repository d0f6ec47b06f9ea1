"""One `deploy` or `rollback` run at a time per service (deploy.leases), whichever launched
it: the second is refused naming the service and the run holding it, and audited as
`run.refused`; the lease ends with the run (success, failure, a failed step) or, for a run
worker that died, at its bound. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from tests.deploy.test_deploy_job import _approved, _resources, _run
from tests.deploy.test_guarded_jobs import _config, _events, _failure, _grant, _launch
from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy import deployment_rows, leases
from timbel_dagster.deploy.lookup import find
from timbel_dagster.jobs.deploy import rollout_cluster
from timbel_dagster.sensors.leases import release_canceled_run_leases, release_failed_run_leases
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import Rollback, ServiceLease

HOUR = dt.timedelta(hours=1)


def _patches(fakes: dict) -> int:
    return sum(1 for f in fakes.values() for m, _, _ in f.requests if m == "PATCH")


def test_a_rollback_is_refused_while_a_deploy_holds_the_service(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    engine = get_engine(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    assert _run(warehouse_url, resources, number).success
    assert leases.holder(engine, "shop-api") is None  # released when the deploy ended
    # A deploy run of the service in progress (launched from the Launchpad: no service tag).
    leases.claim(engine, "shop-api", "deploy", "deploy-run-1", HOUR)
    patches = _patches(fakes)
    config = _config(number)
    # Not waiting for that deploy to end (a rollback waits 15 minutes by default).
    config["ops"]["roll_back_deployment"]["config"]["wait_for_service_seconds"] = 0
    _grant(warehouse_url, config, request_number=number)
    refused = _launch(resources, config)
    assert not refused.success
    assert _failure(refused).startswith(
        "rollback refused: service shop-api is held by deploy run deploy-run-1 (since "
    )
    [audited] = _events(warehouse_url, "run.refused")
    assert audited.details["run"] == refused.run_id
    assert "held by deploy run deploy-run-1" in audited.details["reason"]
    with engine.connect() as connection:
        assert connection.execute(select(Rollback.id)).first() is None
    assert _patches(fakes) == patches
    assert leases.holder(engine, "shop-api")["run_id"] == "deploy-run-1"  # not released

    leases.release(engine, "deploy-run-1")  # that deploy ended: a rollback goes ahead
    again = _config(number, reason="errors, again")
    _grant(warehouse_url, again, request_number=number)
    done = _launch(resources, again)
    assert done.success, _failure(done)
    assert leases.holder(engine, "shop-api") is None


def test_a_deploy_is_refused_while_a_rollback_holds_the_service(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    engine = get_engine(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    leases.claim(engine, "shop-api", "rollback", "rollback-run-7", HOUR)
    refused = _run(warehouse_url, resources, number)
    assert not refused.success
    assert _failure(refused).startswith(
        "deploy refused: service shop-api is held by rollback run rollback-run-7 (since "
    )
    [audited] = _events(warehouse_url, "run.refused")
    assert audited.details["job"] == "deploy" and audited.details["run"] == refused.run_id
    assert _events(warehouse_url, "deploy.start") == []
    with engine.connect() as connection:
        assert find(connection, str(number))["status"] == "approved"  # still to roll out

    # That rollback's worker died 2 hours ago with a 30-minute lease: taken over.
    leases.release(engine, "rollback-run-7")
    long_ago = dt.datetime.now(dt.UTC) - 2 * HOUR
    leases.claim(engine, "shop-api", "rollback", "rollback-run-7", HOUR / 2, now=long_ago)
    done = _run(warehouse_url, resources, number)
    assert done.success
    assert leases.holder(engine, "shop-api") is None


def test_a_deploy_that_fails_while_planning_releases_the_service(
    warehouse_url: str, fakes: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = get_engine(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    seen = []

    def broken(connection, request, *args, **kwargs):
        # In the step's transaction (SQLite's one writer holds it).
        seen.extend(connection.execute(select(ServiceLease.job, ServiceLease.run_id)).all())
        raise RuntimeError("the warehouse write broke")

    monkeypatch.setattr(deployment_rows, "record_release", broken)
    failed = _run(warehouse_url, resources, number)
    assert not failed.success
    assert [tuple(h) for h in seen] == [("deploy", failed.run_id)]  # held while planning
    assert leases.holder(engine, "shop-api") is None  # released by the failure hook
    with engine.connect() as connection:
        assert find(connection, str(number))["status"] == "approved"


def test_a_run_claiming_again_keeps_its_lease_and_another_service_is_free(
    warehouse_url: str,
) -> None:
    engine = get_engine(warehouse_url)
    now = dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC)
    first = leases.claim(engine, "shop-api", "deploy", "r1", HOUR, now=now)
    assert (
        leases.claim(engine, "shop-api", "deploy", "r1", HOUR, now=now + HOUR / 4)["expires_at"]
        == now + HOUR
    )
    leases.claim(engine, "ledger", "rollback", "r2", HOUR, now=now)
    with pytest.raises(leases.ServiceHeldError, match=r"died\)$") as held:
        leases.claim(engine, "shop-api", "rollback", "r3", HOUR, now=now + HOUR / 2)
    assert "deploy run r1 (since 2026-12-05 12:00:00 UTC)" in str(held.value)
    assert "at 2026-12-05 13:00:00 UTC if its run worker died" in str(held.value)
    assert leases.claim(engine, "shop-api", "rollback", "r3", HOUR, now=now + HOUR)["run_id"] == (
        "r3"
    )  # at its end: taken over
    assert first["run_id"] == "r1" and leases.release(engine, "r3") == 1


@pytest.mark.parametrize(
    ("timeout", "clusters", "parallel", "minutes"),
    [(600, 1, 1, 25), (600, 3, 8, 25), (600, 9, 8, 45), (10, 1, 1, 5 + 20 / 60)],
)
def test_the_lease_covers_every_wave_of_rollouts_and_rollbacks(
    timeout: float, clusters: int, parallel: int, minutes: float
) -> None:
    length = leases.lease_length(timeout, clusters, parallel)
    assert length == dt.timedelta(minutes=minutes)


def test_a_claim_waits_for_the_holder_to_release(warehouse_url: str) -> None:
    """A rollback waits for the deploy in progress (`wait`), trying again every `poll`
    seconds; a holder that does not release in time still refuses it."""
    engine = get_engine(warehouse_url)
    leases.claim(engine, "shop-api", "deploy", "deploy-run-1", HOUR)
    tries: list[float] = []
    said: list[str] = []

    def deploy_ends_after_two_polls(seconds: float) -> None:
        tries.append(seconds)
        if len(tries) == 2:
            leases.release(engine, "deploy-run-1")

    lease = leases.claim(
        engine, "shop-api", "rollback", "rollback-run-2", HOUR,
        wait=3600, poll=5, sleep=deploy_ends_after_two_polls, log=said.append,
    )  # fmt: skip
    assert lease["run_id"] == "rollback-run-2" and tries == [5, 5]
    assert said[0].startswith("service shop-api is held by deploy run deploy-run-1")
    assert said[0].endswith("s more")

    def never_released(seconds: float) -> None:
        tries.append(seconds)
        time.sleep(seconds)

    with pytest.raises(leases.ServiceHeldError, match="held by rollback run rollback-run-2"):
        leases.claim(engine, "shop-api", "deploy", "deploy-run-3", HOUR, wait=1.0, poll=0.25,
                     sleep=never_released)  # fmt: skip
    assert len(tries) > 2  # it did try again before refusing


def test_the_lease_sensors_free_the_service_of_a_failed_or_canceled_run(
    warehouse_url: str, fakes: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ended holding its service (a cluster step failed on something else than a
    rollout error, or the run was terminated) frees it as soon as Dagster says it ended."""
    engine = get_engine(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)

    def broken(connection, request, *args, **kwargs):
        raise RuntimeError("the warehouse write broke")

    monkeypatch.setattr(deployment_rows, "record_release", broken)
    failed = _run(warehouse_url, resources, number)
    assert not failed.success
    warehouse = WarehouseResource(database_url=warehouse_url)
    for sensor in (release_failed_run_leases, release_canceled_run_leases):
        # As the run left it (its steps' own release did not run), beside another run's lease.
        leases.claim(engine, "shop-api", "deploy", failed.run_id, HOUR)
        leases.claim(engine, "ledger", "rollback", "another-run", HOUR)
        with dg.instance_for_test() as instance:
            sensor(
                dg.build_run_status_sensor_context(
                    sensor_name=sensor.name,
                    dagster_event=failed.get_run_failure_event(),
                    dagster_instance=instance,
                    dagster_run=failed.dagster_run,
                    resources={"warehouse": warehouse},
                )
            )
        assert leases.holder(engine, "shop-api") is None, sensor.name
        assert leases.holder(engine, "ledger")["run_id"] == "another-run"
        leases.release(engine, "another-run")


@dg.op(config_schema=dg.Permissive())
def _planned_target(context):  # no annotation: Dagster reads it, and annotations are strings
    return dict(context.op_config)


@dg.job
def _cluster_step_alone():
    """What a re-execution from failure of `deploy` runs: its cluster step, not plan_rollout
    (the planned target comes from the parent run's outputs)."""
    rollout_cluster(_planned_target())


def test_a_cluster_step_holds_the_service_for_its_own_run(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    """A re-execution from failure is a new run that skips plan_rollout: its cluster steps
    hold the service themselves, and are refused while another run holds it."""
    engine = get_engine(warehouse_url)
    resources = _resources(warehouse_url, fakes, tmp_path)
    number = _approved(warehouse_url)
    config = {"request": number, "timeout_seconds": 5, "poll_seconds": 0.05}
    target = {"cluster": sorted(fakes)[0], "config": config}
    run_config = {"ops": {"_planned_target": {"config": target}}}
    leases.claim(engine, "shop-api", "rollback", "rollback-run-9", HOUR)
    patches = _patches(fakes)
    refused = _cluster_step_alone.execute_in_process(
        run_config=run_config, resources=resources, raise_on_error=False
    )
    assert not refused.success
    assert "held by rollback run rollback-run-9" in _failure(refused)
    assert _patches(fakes) == patches  # nothing was changed on the cluster

    leases.release(engine, "rollback-run-9")
    done = _cluster_step_alone.execute_in_process(run_config=run_config, resources=resources)
    held = leases.holder(engine, "shop-api")
    assert held["run_id"] == done.run_id and held["job"] == "deploy"
