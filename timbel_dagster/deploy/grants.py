"""Run grants: leave for one run of a guarded job (`rollback`, `provision_tenant`,
`delete_tenant`) with one exact run config.

Whoever may take the action (the API after its policy check, the `timbel` command acting as
a named user, the health sensor) writes a grant; `run_grant_sensor` launches the job with
that config; the run claims the grant once (`claim`) before it changes anything. A launch
from the Dagster UI with a made-up config finds no grant, changes nothing and is audited as
`run.refused`. The grant row keeps the config's SHA-256; the config itself is in the
details of its `run.grant` audit event, whose hash chain makes it tamper-evident, and the
sensor launches it only if it still hashes to the grant's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest
from timbel_dagster.warehouse.schema.identity import RunGrant
from timbel_dagster.warehouse.schema.models import AuditEvent

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

GUARDED_JOBS = ("rollback", "provision_tenant", "delete_tenant")
# Long enough for the sensor (every 30 s) and a busy run queue; short enough that leave
# nobody used does not linger.
GRANT_TTL = dt.timedelta(hours=1)
# Grants are namespaced ids: a caller that derives the id from its own key (the health
# sensor's `rollback:<request>:<cluster>:<image>`) grants at most once per key.
_NAMESPACE = uuid.UUID("6f1c8a52-9d7e-4b0f-8f43-2a5e1c7b9d10")


class GrantRefusedError(PermissionError):
    """No grant lets this run go: none for its job and config, expired, or used already."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def canonical(run_config: Mapping[str, Any]) -> str:
    """The run config as canonical JSON: sorted keys, no white space."""
    return json.dumps(run_config, sort_keys=True, separators=(",", ":"), default=str)


def config_sha256(run_config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(run_config).encode()).hexdigest()


def grant_id_for(key: str) -> uuid.UUID:
    """The grant id of a caller's own idempotency key."""
    return uuid.uuid5(_NAMESPACE, key)


def grant_run(
    connection: Connection,
    job: str,
    run_config: Mapping[str, Any],
    actor: str,
    *,
    request_number: int | None = None,
    grant_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
    ttl: dt.timedelta = GRANT_TTL,
) -> tuple[uuid.UUID, bool]:
    """Grant one run of `job` with exactly `run_config`, acting as `actor` (audited as
    `run.grant` with the config), on the caller's connection. Returns (grant id, whether it
    is new): a `grant_id` that exists already is not granted again."""
    if job not in GUARDED_JOBS:
        raise ValueError(f"{job!r} is not a guarded job ({', '.join(GUARDED_JOBS)})")
    ident = grant_id or uuid.uuid4()
    if connection.execute(select(RunGrant.id).where(RunGrant.id == ident)).first():
        return ident, False
    now = now or _now()
    digest = config_sha256(run_config)
    connection.execute(
        RunGrant.__table__.insert().values(
            id=ident, job=job, config_sha256=digest, actor=actor, request_number=request_number,
            created_at=now, expires_at=now + ttl, used_at=None, run_id=None,
        )
    )  # fmt: skip
    append_event(
        connection,
        actor=actor,
        action="run.grant",
        target=f"grant {ident}",
        details={"job": job, "run_config": json.loads(canonical(run_config)),
                 "config_sha256": digest, "request": request_number,
                 "expires_at": (now + ttl).isoformat()},
    )  # fmt: skip
    return ident, True


def open_grants(connection: Connection, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Unused, unexpired grants, oldest first, each with the `run_config` its `run.grant`
    event recorded; a grant whose recorded config no longer hashes to its digest is left
    out (it would be refused anyway)."""
    now = now or _now()
    grants = [
        dict(row)
        for row in connection.execute(
            select(RunGrant.__table__)
            .where(RunGrant.used_at.is_(None), RunGrant.expires_at > now)
            .order_by(RunGrant.created_at, RunGrant.id)
        ).mappings()
    ]
    if not grants:
        return []
    targets = {f"grant {g['id']}": g for g in grants}
    configs = {
        target: details.get("run_config")
        for target, details in connection.execute(
            select(AuditEvent.target, AuditEvent.details).where(
                AuditEvent.action == "run.grant", AuditEvent.target.in_(list(targets))
            )
        )
    }
    found = []
    for target, grant in targets.items():
        config = configs.get(target)
        if config is not None and config_sha256(config) == grant["config_sha256"]:
            found.append(grant | {"run_config": config})
    return found


def rollback_services(connection: Connection, grants: list[dict[str, Any]]) -> dict[str, str]:
    """The service each `rollback` grant acts on, by grant id: the service of the deployment
    request its config names. A grant whose request does not exist is left out (its run is
    refused anyway)."""
    numbers = {}
    for grant in grants:
        if grant["job"] != "rollback":
            continue
        ops = grant["run_config"].get("ops", {})
        number = ops.get("roll_back_deployment", {}).get("config", {}).get("request")
        if isinstance(number, int) and not isinstance(number, bool):
            numbers[str(grant["id"])] = number
    if not numbers:
        return {}
    services = dict(
        connection.execute(
            select(DeploymentRequest.number, DeploymentRequest.service).where(
                DeploymentRequest.number.in_(set(numbers.values()))
            )
        ).all()
    )
    return {ident: services[n] for ident, n in numbers.items() if n in services}


def claim(
    engine: Engine,
    job: str,
    run_config: Mapping[str, Any],
    run_id: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Claim the oldest open grant of `job` for exactly `run_config` for run `run_id`, once
    (`UPDATE ... WHERE used_at IS NULL`: of two racing runs one wins), audited as
    `run.claim` with the grant's actor. Returns the grant.

    Raises:
        GrantRefusedError: no grant matches, it expired, or another run used it.
    """
    now = now or _now()
    digest = config_sha256(run_config)
    with engine.begin() as connection:
        grants = connection.execute(
            select(RunGrant.__table__)
            .where(RunGrant.job == job, RunGrant.config_sha256 == digest)
            .order_by(RunGrant.used_at.is_not(None), RunGrant.created_at)
        ).mappings().all()  # fmt: skip
        usable = [g for g in grants if g["used_at"] is None and g["expires_at"] > now]
        for grant in usable:
            taken = connection.execute(
                update(RunGrant)
                .where(RunGrant.id == grant["id"], RunGrant.used_at.is_(None))
                .values(used_at=now, run_id=run_id)
            )
            if taken.rowcount == 1:
                append_event(
                    connection,
                    actor=grant["actor"],
                    action="run.claim",
                    target=f"run {run_id}",
                    details={"job": job, "grant": str(grant["id"]),
                             "request": grant["request_number"]},
                )  # fmt: skip
                return dict(grant) | {"used_at": now, "run_id": run_id}
    raise GrantRefusedError(_why_not(job, grants, now))


def _why_not(job: str, grants: list, now: dt.datetime) -> str:
    if not grants:
        return (
            f"no run grant for {job} with this exact config: launch it through the API or the "
            "timbel command, not with a config typed into the Launchpad"
        )
    used = [g for g in grants if g["used_at"] is not None]
    if used:
        return f"the run grant for this config was used by run {used[-1]['run_id']} already"
    return f"the run grant for this config expired at {grants[-1]['expires_at']:%Y-%m-%d %H:%M} UTC"


def refuse_run(
    engine: Engine, job: str, run_id: str, reason: str, actor: str, details: Mapping[str, Any]
) -> None:
    """Audit a guarded run that was refused (`run.refused`, the run id and the reason)."""
    with engine.begin() as connection:
        append_event(
            connection,
            actor=actor,
            action="run.refused",
            target=f"run {run_id}",
            details={"job": job, "run": run_id, "reason": reason, **details},
        )
