"""`deployment_health_sensor`: watch fresh deployments and grant a `rollback` run when a
breach lasts `threshold` checks in a row (so at least threshold x interval); the grant is
the rollback's leave to run, and `run_grant_sensor` launches it (`deploy.grants`)."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import datetime as dt
import json

import dagster as dg

from timbel_dagster.bindings.warehouse import WarehouseResource
from timbel_dagster.deploy.rollback import idempotency_key
from timbel_dagster.jobs.rollback import rollback
from timbel_dagster.resources.kubernetes import KubernetesResource
from timbel_dagster.resources.prometheus import PrometheusClient
from timbel_dagster.settings import get_settings

SENSOR = "deployment_health_sensor"


def watched(connection, policies: dict, now: dt.datetime) -> list[dict]:
    """(request, cluster) pairs to check: deployed requests of services with a policy whose
    rollout finished within the policy's watch window."""
    from sqlalchemy import select

    # lazy: warehouse.schema.deploy loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R
    from timbel_dagster.warehouse.schema.deploy import RolloutTarget as T

    if not policies:
        return []
    longest = max(p.watch for p in policies.values())
    rows = connection.execute(
        select(R.__table__, T.cluster, T.finished_at)
        .join(T, T.request_id == R.id)
        .where(R.status == "deployed", R.service.in_(list(policies)))
        .where(T.status == "succeeded", T.finished_at >= now - longest)
    ).mappings()
    return [dict(r) for r in rows if r["finished_at"] >= now - policies[r["service"]].watch]


def check_all(targets, policies, kubernetes, prometheus, counts, now, log, checked=None) -> list:
    """Check each target whose policy interval has passed since its last check (`checked`:
    key -> ISO time, updated here); the run requests for breaches that lasted `threshold`
    checks, so at least threshold x interval."""
    # lazy: deploy.health loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.health import advance, breaches

    requests = []
    for target in targets:
        policy, cluster = policies[target["service"]], target["cluster"]
        key = idempotency_key(target["id"], cluster, target["image"])
        if checked is not None:
            last = checked.get(key)
            if last and now - dt.datetime.fromisoformat(last) < policy.interval:
                continue  # the sensor ticks more often than this service is checked
            checked[key] = now.isoformat()
        try:
            with kubernetes.client(cluster) as client:
                deployment = next(
                    (d for d in client.deployments() if d.name == target["service"]), None
                )
                pods = [p for p in client.pods() if p.owner_name == target["service"]]
            found = breaches(policy, cluster, deployment, pods, prometheus, now)
        except Exception as error:  # a check that cannot run is not a breach
            log(f"{target['service']} in {cluster}: check failed: {error}")
            continue
        count = advance(counts, key, bool(found))
        if found:
            log(
                f"{target['service']} in {cluster}: {'; '.join(found)} ({count}/{policy.threshold})"
            )
        if count >= policy.threshold:
            requests.append(
                dg.RunRequest(
                    run_key=key,
                    run_config={
                        "ops": {
                            "roll_back_deployment": {
                                "config": {
                                    "request": target["number"],
                                    "cluster": cluster,
                                    "reason": "; ".join(found),
                                    "trigger": SENSOR,
                                    "dry_run": policy.dry_run,
                                }
                            }
                        }
                    },
                    tags={"timbel/service": target["service"], "timbel/cluster": cluster},
                )
            )
    return requests


def grant_rollbacks(engine, requests: list) -> int:
    """A run grant (acting as this sensor) for each planned rollback; the grant id derives
    from the run key, so a breach that lasts grants once. How many grants are new."""
    # lazy: deploy.grants loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.grants import grant_id_for, grant_run

    new = 0
    with engine.begin() as connection:
        for planned in requests:
            config = planned.run_config["ops"]["roll_back_deployment"]["config"]
            _, made = grant_run(
                connection, "rollback", planned.run_config, SENSOR,
                request_number=config["request"], grant_id=grant_id_for(planned.run_key),
            )  # fmt: skip
            new += made
    return new


@dg.sensor(
    name=SENSOR,
    job=rollback,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Check services deployed within their watch window (rollout, crash loops, "
    "error rate and latency PromQL from TIMBEL_HEALTH_FILE) and grant a `rollback` run "
    "(run_grant_sensor launches it) when a breach lasts `threshold` checks in a row.",
)
def deployment_health_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    kubernetes: KubernetesResource,
):
    # lazy: deploy.health loads SQLAlchemy; the code location loads without it
    from timbel_dagster.deploy.health import load_policies

    settings = get_settings()
    if not settings.timbel_health_file:
        return dg.SkipReason("no health checks: set TIMBEL_HEALTH_FILE to watch deployments")
    policies = load_policies(settings.timbel_health_file)
    now = dt.datetime.now(dt.UTC)
    with warehouse.engine().connect() as connection:
        targets = watched(connection, policies, now)
    prometheus = (
        PrometheusClient(str(settings.prometheus_url), settings.prometheus_timeout_seconds)
        if settings.prometheus_url
        else None
    )
    cursor = json.loads(context.cursor) if context.cursor else {}
    counts, checked = cursor.get("counts", {}), cursor.get("checked", {})
    requests = check_all(
        targets, policies, kubernetes, prometheus, counts, now, context.log.info, checked
    )
    watching = {idempotency_key(t["id"], t["cluster"], t["image"]) for t in targets}
    context.update_cursor(
        json.dumps(
            {  # healthy and no longer watched deployments drop out of the cursor
                "counts": {k: v for k, v in counts.items() if v and k in watching},
                "checked": {k: v for k, v in checked.items() if k in watching},
            }
        )
    )
    if not requests:
        return dg.SkipReason(f"{len(targets)} deployments checked, none to roll back")
    granted = grant_rollbacks(warehouse.engine(), requests)
    return dg.SkipReason(
        f"{len(requests)} rollbacks due, {granted} newly granted: run_grant_sensor launches them"
    )
