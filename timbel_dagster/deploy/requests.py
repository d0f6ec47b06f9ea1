"""Deployment requests and their approval: request, approve, reject, fast-track, review.

Every call either changes the request and appends its audit event in one transaction, or
changes nothing, appends a `.refused` audit event naming why, and raises `RequestError`
(a ValueError: the CLI prints it as one line).

A request names a service and an image Timbel knows (`deploy.known`). The security gate
judges the image by digest: a tag resolves through `registry_images`, then the registry
(`lookup`), which is asked before any transaction opens, never inside one.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timbel_dagster.deploy import lookup
from timbel_dagster.deploy.deciders import REASON_MAX_CHARS, current_step, refusal
from timbel_dagster.deploy.emergency import Emergency
from timbel_dagster.deploy.known import KnownChecks
from timbel_dagster.deploy.lookup import Actor, ExpiredError, NotPermittedError, RequestError
from timbel_dagster.security.policy import security_gate
from timbel_dagster.security.policy_file import default_policy
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.people import membership
from timbel_dagster.warehouse.schema.deploy import ApprovalStep, DeploymentRequest
from timbel_dagster.warehouse.schema.deploy import DeploymentRequest as R
from timbel_dagster.warehouse.schema.models import User

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from timbel_dagster.security.image_ref import DigestLookup
    from timbel_dagster.security.policy import GateResult
    from timbel_dagster.security.policy_file import Policy

__all__ = ["IMAGE", "ExpiredError", "NotPermittedError", "RequestError", "Requests"]

# registry/repository[:tag][@sha256:digest], as `docker pull` accepts them.
IMAGE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
OPEN = ("pending",)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Requests(Emergency, KnownChecks):
    """Deployment requests over the warehouse, acting as whoever the caller says."""

    def __init__(
        self,
        engine: Engine,
        chains: dict[str, tuple[str, ...]],
        ttl: dt.timedelta,
        clock: Callable[[], dt.datetime] = _now,
        notify: Callable[[dict[str, Any], str, list[str]], None] | None = None,
        policy: Policy | None = None,
        lookup: DigestLookup | None = None,
    ) -> None:
        self.engine, self.chains, self.ttl, self.clock = engine, chains, ttl, clock
        self.notify = notify  # (request, event, user names to mention) -> None
        # The security gate approvals must pass (TIMBEL_SECURITY_POLICY_FILE).
        self.policy = policy or default_policy()
        # The registry's manifest HEAD for tags registry_images does not know; its answers
        # are kept for the call in progress (`_answers`), read inside transactions.
        self.lookup = lookup
        self._answers: dict[tuple[str, str, str], str | None] = {}

    # --- reading -------------------------------------------------------------------------
    def actor(self, connection: Connection, name: str) -> Actor:
        return lookup.actor(connection, name)

    def find(self, connection: Connection, ref: str) -> dict[str, Any]:
        return lookup.find(connection, ref)

    def steps(self, connection: Connection, request_id: uuid.UUID) -> list[dict[str, Any]]:
        return lookup.steps(connection, request_id)

    def status(self, ref: str) -> dict[str, Any]:
        """The request as it stands now (`lookup.as_of`: past its expiry, expired) and its
        steps; reads nothing else and writes nothing."""
        with self.engine.connect() as connection:
            request = lookup.as_of(self.find(connection, ref), self.clock())
            return request | {"steps": self.steps(connection, request["id"])}

    def gate(self, ref: str) -> GateResult:
        """The security gate's verdict on the request's image now: what its final approval
        is judged by (the registry is asked first, outside any transaction)."""
        self._answers = {}
        self._resolve_request_first(ref)
        with self.engine.connect() as connection:
            request = self.find(connection, ref)
            return security_gate(
                connection, request, self.policy, now=self.clock(), lookup=self._answered
            )

    # --- changing ------------------------------------------------------------------------
    def _security_check(self, connection: Connection, request: dict[str, Any], what: str) -> None:
        """Refuse to approve (`what`) a request whose image the group's security policy
        blocks; the RequestError names the blocking findings."""

        result = security_gate(
            connection, request, self.policy, now=self.clock(), lookup=self._answered
        )
        if not result.allowed:
            raise RequestError(f"{what}: {result.refusal()}")

    def _refuse(self, actor: str, action: str, target: str | None, error: Exception) -> None:
        with self.engine.begin() as connection:
            append_event(
                connection,
                actor=actor,
                action=f"{action}.refused",
                target=target,
                details={"error": str(error)},
            )

    def _guarded(self, actor: str, action: str, target: str | None, change: Callable[[], Any]):
        """Run `change`; on a RequestError audit the refusal (after the change's transaction
        rolled back) and raise it again."""
        self._answers = {}  # a tag may have moved since the last call
        try:
            return change()
        except RequestError as error:
            if isinstance(error, ExpiredError):
                self.expire()
            self._refuse(actor, action, target, error)
            raise

    def request(
        self, actor_name: str, service: str, image: str, group: str, reason: str
    ) -> dict[str, Any]:
        def change() -> dict[str, Any]:
            from sqlalchemy import func, insert, select

            if group not in self.chains:
                raise RequestError(
                    f"unknown environment group {group!r}; groups are {', '.join(self.chains)}"
                )
            if not IMAGE.match(image):
                raise RequestError(f"{image!r} is not an image reference like registry/app:1.2.3")
            if not service.strip():
                raise RequestError("the service name is empty")
            self._check_known(actor_name, service, image)
            if not self.chains[group]:  # gated at once, below: resolve the tag first
                self._resolve_first(image)
            now = self.clock()
            with self.engine.begin() as connection:
                actor = self.actor(connection, actor_name)
                table = DeploymentRequest.__table__
                number = (connection.execute(select(func.max(table.c.number))).scalar() or 0) + 1
                chain = self.chains[group]
                if not chain:  # approved at once: the security gate applies now
                    self._security_check(
                        connection,
                        {"image": image, "environment_group": group},
                        f"cannot approve {service} for {group} without an approval chain",
                    )
                values = {
                    "id": uuid.uuid4(),
                    "number": number,
                    "service": service,
                    "image": image,
                    "environment_group": group,
                    "reason": reason or "",
                    "requested_by": actor.name,
                    "status": "pending" if chain else "approved",
                    "expires_at": now + self.ttl,
                    "decided_at": None if chain else now,
                    "created_at": now,
                    "updated_at": now,
                }
                connection.execute(insert(table).values(**values))
                if chain:
                    connection.execute(
                        insert(ApprovalStep),
                        [
                            {"request_id": values["id"], "position": i, "role": role}
                            for i, role in enumerate(chain, start=1)
                        ],
                    )
                append_event(
                    connection,
                    actor=actor.name,
                    action="deploy.request",
                    target=f"request #{number}",
                    details={"service": service, "image": image, "group": group, "chain": chain},
                )
            if chain:
                self._announce(values, "approval_requested", chain[0])
            return values

        return self._guarded(actor_name, "deploy.request", f"{service} -> {group}", change)

    def decide(self, actor_name: str, ref: str, approve: bool, reason: str) -> dict[str, Any]:
        """Approve or reject the request's current step."""
        action = "deploy.approve" if approve else "deploy.reject"

        def change() -> dict[str, Any]:
            from sqlalchemy import update

            if not reason or not reason.strip():
                raise RequestError(f"{'approving' if approve else 'rejecting'} needs a --reason")
            if len(reason.strip()) > REASON_MAX_CHARS:
                raise RequestError(
                    f"the reason has {len(reason.strip())} characters; at most "
                    f"{REASON_MAX_CHARS} are kept"
                )
            if approve:
                self._resolve_request_first(ref)
            now = self.clock()
            with self.engine.begin() as connection:
                actor = self.actor(connection, actor_name)
                request = self._open(connection, ref, now)
                steps = self.steps(connection, request["id"])
                refused = refusal(connection, actor, request, steps)
                if refused:
                    raise NotPermittedError(refused)
                step = current_step(steps)
                if approve and step["position"] == len(steps):  # the approving decision
                    self._security_check(connection, request, f"request #{request['number']}")
                connection.execute(
                    update(ApprovalStep)
                    .where(ApprovalStep.request_id == request["id"])
                    .where(ApprovalStep.position == step["position"])
                    .values(
                        decision="approved" if approve else "rejected",
                        decided_by=actor.name,
                        reason=reason,
                        decided_at=now,
                    )
                )
                last = step["position"] == len(steps)
                status = (
                    "pending" if approve and not last else ("approved" if approve else "rejected")
                )
                if status != "pending":
                    connection.execute(
                        update(DeploymentRequest)
                        .where(DeploymentRequest.id == request["id"])
                        .values(status=status, decided_at=now, updated_at=now)
                    )
                append_event(
                    connection,
                    actor=actor.name,
                    action=action,
                    target=f"request #{request['number']}",
                    details={"step": step["position"], "role": step["role"], "reason": reason,
                             "status": status},
                )  # fmt: skip
            request |= {"status": status}
            if status == "pending":
                self._announce(request, "approval_requested", steps[step["position"]]["role"])
            return request

        return self._guarded(actor_name, action, f"request {ref}", change)

    def _open(self, connection: Connection, ref: str, now: dt.datetime) -> dict[str, Any]:
        """The request, if it can still be decided."""
        request = self.find(connection, ref)
        if request["status"] not in OPEN:
            raise RequestError(
                f"request #{request['number']} is {request['status']}, not pending: it cannot "
                "be decided again"
            )
        if request["expires_at"] <= now:
            raise ExpiredError(
                f"request #{request['number']} expired at {request['expires_at']:%Y-%m-%d %H:%M} "
                "UTC; make a new request"
            )
        return request

    def expire(self, now: dt.datetime | None = None) -> int:
        """Record the pending requests past their expiry as expired (audited); how many."""
        return expire_requests(self.engine, now or self.clock())

    def _announce(self, request: dict[str, Any], event: str, *roles: str, **extra: Any) -> None:
        """Tell the people of `roles` that they are up: the members of the team that owns the
        service first (only they may decide a team lead step), else the requester's team."""
        if self.notify is None:
            return
        from sqlalchemy import select

        with self.engine.connect() as connection:
            team = connection.execute(
                select(User.team).where(User.name == request["requested_by"])
            ).scalar()
            people = connection.execute(
                # Disabled users may not decide, so they are not asked to.
                select(User.name, User.team).where(User.role.in_(roles), User.disabled_at.is_(None))
            ).all()
            owner = membership.owner_team(connection, request["service"])
            owners = set(membership.members_of(connection, owner)) if owner else set()
        in_owning_team = [name for name, _ in people if name in owners]
        same_team = [name for name, t in people if t == team]
        names = in_owning_team or same_team or [name for name, _ in people]
        self.notify(
            request | extra, event, sorted(n for n in names if n != request["requested_by"])
        )


def expire_requests(engine: Engine, now: dt.datetime) -> int:
    """Record the pending requests past their expiry as expired, since their `expires_at`
    (what `lookup.as_of` shows before this runs), audited as `deploy.expire`; how many.
    Run by `request_expiry_sensor` and the CLI's listings, never by an HTTP read."""
    from sqlalchemy import select, update

    with engine.begin() as connection:
        numbers = (
            connection.execute(select(R.number).where(R.status == "pending", R.expires_at <= now))
            .scalars()
            .all()
        )
        if numbers:
            connection.execute(
                update(R)
                .where(R.number.in_(numbers), R.status == "pending")
                .values(status="expired", decided_at=R.expires_at, updated_at=now)
            )
            append_event(
                connection,
                actor="timbel",
                action="deploy.expire",
                target=",".join(f"request #{n}" for n in numbers),
                details={"requests": list(numbers)},
            )
    return len(numbers)
