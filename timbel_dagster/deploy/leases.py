"""One run at a time per service across the jobs that change it (`deploy`, `rollback`): a
lease row per service, claimed at the start of the run's changes and released when it ends.

The run queue's tag limit (`timbel/rollback-service`) keeps two rollbacks of a service apart,
but a `deploy` launched from the Launchpad carries no service tag; the lease is the warehouse's
own check, for every launch path. A run worker that dies never releases its lease: it ends at
`expires_at`, a bound from the run's own timeouts, after which the next run takes it over.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from timbel_dagster.warehouse.schema.deploy import ServiceLease

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# Beyond the run's own waits: starting its steps, the warehouse writes, the notices.
MARGIN = dt.timedelta(minutes=5)


class ServiceHeldError(Exception):
    """Another run holds the service."""


def lease_length(timeout_seconds: float, clusters: int = 1, parallel: int = 1) -> dt.timedelta:
    """How long a run may hold its service: each wave of `parallel` clusters waits up to
    `timeout_seconds` for its rollout, and as long again for a rollback of the failed ones."""
    waves = math.ceil(max(clusters, 1) / max(parallel, 1))
    return dt.timedelta(seconds=2 * waves * timeout_seconds) + MARGIN


def claim(
    engine: Engine,
    service: str,
    job: str,
    run_id: str,
    length: dt.timedelta,
    now: dt.datetime | None = None,
    wait: float = 0.0,
    poll: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Hold `service` for run `run_id` of `job` for at most `length`; the lease. A run
    claiming again keeps its lease; an expired lease of another run is taken over. While
    another run holds it, try again every `poll` seconds for up to `wait` seconds (a
    rollback waits for the deploy in progress rather than being lost; 0: refuse at once).

    Raises:
        ServiceHeldError: another run holds it still (the message names the service and the
            run).
    """
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            return _claim_once(engine, service, job, run_id, length, now)
        except ServiceHeldError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            if log is not None:
                log(f"{error}; waiting up to {left:.0f} s more")
            sleep(min(max(poll, 0.01), left))


def _claim_once(
    engine: Engine,
    service: str,
    job: str,
    run_id: str,
    length: dt.timedelta,
    now: dt.datetime | None,
) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.UTC)
    row = {"service": service, "job": job, "run_id": run_id, "claimed_at": now,
           "expires_at": now + length}  # fmt: skip
    for _ in range(3):  # a holder that releases between our insert and our read: again
        with engine.begin() as connection:
            connection.execute(
                delete(ServiceLease).where(
                    ServiceLease.service == service, ServiceLease.expires_at <= now
                )
            )
        try:
            # The primary key decides between two runs claiming at once.
            with engine.begin() as connection:
                connection.execute(insert(ServiceLease).values(**row))
            return row
        except IntegrityError:
            pass
        with engine.connect() as connection:
            held = (
                connection.execute(select(ServiceLease.__table__).where(
                    ServiceLease.service == service
                )).mappings().first()
            )  # fmt: skip
        if held is None:
            continue
        if held["run_id"] == run_id:
            return dict(held)
        raise ServiceHeldError(
            f"service {service} is held by {held['job']} run {held['run_id']} (since "
            f"{held['claimed_at']:%Y-%m-%d %H:%M:%S} UTC): one deploy or rollback of a service "
            "at a time; run this again once that run has ended (its lease ends with it, or at "
            f"{held['expires_at']:%Y-%m-%d %H:%M:%S} UTC if its run worker died)"
        )
    raise ServiceHeldError(f"service {service}: its lease changed hands three times; run again")


def release(engine: Engine, run_id: str) -> int:
    """Release every service run `run_id` holds; how many."""
    with engine.begin() as connection:
        return connection.execute(
            delete(ServiceLease).where(ServiceLease.run_id == run_id)
        ).rowcount


def holder(engine: Engine, service: str) -> dict[str, Any] | None:
    """The lease on `service`, expired or not (None: free)."""
    with engine.connect() as connection:
        found = connection.execute(
            select(ServiceLease.__table__).where(ServiceLease.service == service)
        ).mappings().first()  # fmt: skip
    return dict(found) if found else None
