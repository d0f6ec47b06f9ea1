"""Who acts in a run, as the audit log records it.

A run tag is a claim anyone who can launch a run in the Dagster UI can make, so the
`timbel/actor` tag alone never names the actor. The `timbel` command runs its jobs in its
own process (`execute_in_process`, DESIGN §5) inside `acting_as(user)`: the user it checked
travels in a context variable of that process, which a run launched from the UI (executed
by a run worker the daemon or webserver starts) cannot set, whatever tags or config it has.

- a run inside `acting_as(user)`: the actor is `user`;
- any other run with a `timbel/actor` tag: `dagster-ui`, the tag kept as
  `unverified_claim` in the audit event's details;
- a sensor's, schedule's or backfill's run without that tag: `dagster` (automation);
- any other run: `dagster-ui`.

The jobs that change clusters need more than an actor: `jobs/guard.py` lets `rollback`,
`provision_tenant` and `delete_tenant` run only by claiming a run grant, and then they act
as the grant's actor; the other jobs record an unverified run as `dagster-ui`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

ACTOR_TAG = "timbel/actor"
UI_ACTOR = "dagster-ui"
SYSTEM_ACTOR = "dagster"
# Tags Dagster itself puts on the runs its sensors, schedules and backfills launch.
_AUTOMATION_TAGS = ("dagster/sensor_name", "dagster/schedule_name", "dagster/backfill")
# A claim is kept for the record, not trusted: bounded so that it cannot bloat an event.
_CLAIM_CHARS = 256

_ACTING: ContextVar[str | None] = ContextVar("timbel_acting_user", default=None)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Runs executed in process inside this block act as `actor` (a user the caller
    checked: the `timbel` command's `--as` / TIMBEL_USER)."""
    token = _ACTING.set(actor)
    try:
        yield
    finally:
        _ACTING.reset(token)


@dataclass(frozen=True)
class RunActor:
    """The actor of a run: `name` for the audit log's actor column."""

    name: str
    verified: bool
    claim: str | None = None  # the `timbel/actor` tag of a run that is not verified

    @property
    def details(self) -> dict[str, str]:
        """What an audit event of the run adds to its details: nothing for a verified
        actor, else where the run came from and the claim its tag made."""
        if self.verified or (self.name == SYSTEM_ACTOR and self.claim is None):
            return {}
        found = {"launched_from": self.name}
        if self.claim is not None:
            found["unverified_claim"] = self.claim
        return found


def run_actor(tags: Mapping[str, str]) -> RunActor:
    """The actor of the run with `tags`, executing in this process now."""
    acting = _ACTING.get()
    if acting is not None:
        return RunActor(acting, verified=True)
    claim = tags.get(ACTOR_TAG)
    if claim is None and any(tag in tags for tag in _AUTOMATION_TAGS):
        return RunActor(SYSTEM_ACTOR, verified=False)
    return RunActor(UI_ACTOR, verified=False, claim=None if claim is None else claim[:_CLAIM_CHARS])


def note_unverified(log: Any, actor: RunActor) -> None:
    """Say in the run's log that a `timbel/actor` tag was not taken as the actor."""
    if actor.claim is not None:
        log.warning(
            f"{ACTOR_TAG}={actor.claim!r} is an unverified claim (the run was not launched by "
            f"the timbel command): the audit log records {actor.name}"
        )
