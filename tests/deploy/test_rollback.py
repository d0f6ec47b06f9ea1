"""Automatic rollback: exactly once when triggers race, to the last known-good image,
dry runs, and the health sensor that fires after threshold x interval of breach."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import select

from tests.deploy.conftest import CLUSTERS, OLD
from tests.deploy.test_deploy_job import _approved, _resources, _run
from tests.deploy.test_requests import IMAGE
from timbel_dagster.deploy.health import HealthPolicy, advance, load_policies
from timbel_dagster.deploy.lookup import find
from timbel_dagster.deploy.rollback import roll_back
from timbel_dagster.sensors.health import check_all, watched
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import Rollback


def _deployed(url: str, fakes: dict, tmp_path: Path) -> tuple[dict, dict]:
    resources = _resources(url, fakes, tmp_path)
    number = _approved(url)
    assert _run(url, resources, number).success
    with get_engine(url).connect() as connection:
        return resources, find(connection, str(number))


def _patches(fake) -> int:
    return sum(1 for method, path, _ in fake.requests if method == "PATCH")


def test_two_racing_triggers_roll_back_once(warehouse_url: str, fakes: dict, tmp_path: Path):
    resources, request = _deployed(warehouse_url, fakes, tmp_path)
    engine, kubernetes = get_engine(warehouse_url), resources["kubernetes"]
    before = _patches(fakes["prod-a"])
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def trigger(name: str) -> None:
        barrier.wait()
        results.append(
            roll_back(engine, kubernetes, request, "prod-a", name, "error rate 30 %", poll=0.05)
        )

    threads = [threading.Thread(target=trigger, args=(n,)) for n in ("sensor", "person")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r is None for r in results) == [False, True]  # one did it, one found it done
    assert _patches(fakes["prod-a"]) - before == 1  # exactly one rollback call to the cluster
    assert (
        fakes["prod-a"].get("Deployment", "shop-api", "shop")["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        == OLD
    )  # back to what ran before: the known-good image
    with engine.connect() as connection:
        rows = connection.execute(select(Rollback.status, Rollback.to_image)).all()
    assert rows == [("done", OLD)]


def test_dry_run_changes_nothing(warehouse_url: str, fakes: dict, tmp_path: Path) -> None:
    resources, request = _deployed(warehouse_url, fakes, tmp_path)
    before = _patches(fakes["prod-b"])
    row = roll_back(
        get_engine(warehouse_url), resources["kubernetes"], request, "prod-b", "sensor", "x",
        dry_run=True,
    )  # fmt: skip
    assert row["status"] == "dry_run" and row["to_image"] == OLD
    assert _patches(fakes["prod-b"]) == before


def test_never_back_to_an_image_that_failed(warehouse_url: str, fakes: dict, tmp_path: Path):
    resources, request = _deployed(warehouse_url, fakes, tmp_path)
    engine = get_engine(warehouse_url)
    first = roll_back(
        engine, resources["kubernetes"], request, "prod-c", "sensor", "5xx", poll=0.05
    )
    assert first["to_image"] == OLD
    # The same request again: its image has been rolled back from, nothing is known good
    # beyond what ran before; a second trigger is a no-op (same idempotency key).
    assert roll_back(engine, resources["kubernetes"], request, "prod-c", "x", "y") is None


@pytest.mark.parametrize(
    ("checks", "threshold", "fires_at"),
    [
        ([True, True, True], 3, 2),
        ([True, False, True, True, True], 3, 4),
        ([False] * 1000, 3, None),
        ([True, True], 3, None),
    ],
)
def test_consecutive_breaches(checks: list[bool], threshold: int, fires_at: int | None) -> None:
    counts: dict[str, int] = {}
    fired = [i for i, breached in enumerate(checks) if advance(counts, "k", breached) >= threshold]
    assert (fired[0] if fired else None) == fires_at


def test_health_sensor_plans_a_rollback_for_a_crash_looping_service(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    resources, request = _deployed(warehouse_url, fakes, tmp_path)
    fake = fakes["prod-a"]
    for pod in [o for k, o in fake.objects.items() if k[1] == "pods"]:
        pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    policies = {"shop-api": HealthPolicy("shop-api", threshold=2)}
    now = dt.datetime.now(dt.UTC)
    with get_engine(warehouse_url).connect() as connection:
        targets = watched(connection, policies, now)
    assert sorted(t["cluster"] for t in targets) == sorted(CLUSTERS)
    counts: dict[str, int] = {}
    lines: list[str] = []
    first = check_all(targets, policies, resources["kubernetes"], None, counts, now, lines.append)
    second = check_all(targets, policies, resources["kubernetes"], None, counts, now, lines.append)
    assert first == []
    (planned,) = second
    assert isinstance(planned, dg.RunRequest)
    config = planned.run_config["ops"]["roll_back_deployment"]["config"]
    assert config["cluster"] == "prod-a" and "crash-looping pods" in config["reason"]
    assert planned.run_key == f"rollback:{request['id']}:prod-a:{IMAGE}"


def test_health_file(tmp_path: Path) -> None:
    path = tmp_path / "health.yaml"
    path.write_text(
        "services:\n  shop-api:\n    error_rate: 'sum(rate(x{cluster=\"$cluster\"}[5m]))'\n"
        "    error_rate_max: 0.05\n    threshold: 3\n    interval: 30s\n"
    )
    policy = load_policies(path)["shop-api"]
    assert policy.threshold == 3 and policy.interval == dt.timedelta(seconds=30)
    path.write_text("services:\n  shop-api:\n    latency: 'sum(rate(x[5m])'\n")
    from timbel_dagster.deploy.health import HealthFileError

    with pytest.raises(HealthFileError, match="service 'shop-api': latency: invalid PromQL"):
        load_policies(path)


def _rollback_job(url: str, resources: dict, request: dict, tags: dict, trigger: str):
    from timbel_dagster.jobs.rollback import rollback

    config = {"request": request["number"], "cluster": "prod-a", "reason": "errors",
              "trigger": trigger, "dry_run": True}  # fmt: skip
    return rollback.execute_in_process(
        run_config={"ops": {"roll_back_deployment": {"config": config}}},
        resources=resources,
        tags=tags,
        raise_on_error=False,
    )


def test_a_rollback_launched_from_the_ui_without_a_grant_is_refused(
    warehouse_url: str, fakes: dict, tmp_path: Path
) -> None:
    """Issue #13, finding 7: `trigger` is run config, which anyone launching from the UI
    sets. Issue #15: such a launch has no run grant, so it is refused before anything
    changes, audited as `run.refused` by `dagster-ui` with the claim kept."""
    from timbel_dagster.warehouse.schema.models import AuditEvent

    resources, request = _deployed(warehouse_url, fakes, tmp_path)
    ui = _rollback_job(warehouse_url, resources, request, {"timbel/actor": "soyeon.lee"},
                       trigger="soyeon.lee")  # fmt: skip
    assert not ui.success
    with get_engine(warehouse_url).connect() as connection:
        event = connection.execute(
            select(AuditEvent.actor, AuditEvent.details).where(AuditEvent.action == "run.refused")
        ).one()
        assert connection.execute(select(Rollback.id)).first() is None
    assert event.actor == "dagster-ui" and event.details["run"] == ui.run_id
    assert event.details["unverified_claim"] == "soyeon.lee"
    assert event.details["reason"].startswith("no run grant for rollback")
