"""The emergency path of deployment requests: fast-track and its mandatory review.

A mixin of `Requests` (deploy/requests.py): it uses the request's lookups, clock, chains,
refusal auditing and announcements from there.
"""

from __future__ import annotations

from typing import Any

from timbel_dagster.deploy.lookup import NotPermittedError, RequestError
from timbel_dagster.deploy.team_check import check_team
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.deploy import ApprovalStep, DeploymentRequest


class Emergency:
    def fast_track(self, actor_name: str, ref: str, reason: str, incident: str) -> dict[str, Any]:
        """Skip the chain in an emergency; every approver is told and a review is due."""

        def change() -> dict[str, Any]:
            from sqlalchemy import update

            if not reason or not reason.strip():
                raise RequestError("a fast-track needs a --reason")
            if not incident or not incident.strip():
                raise RequestError("a fast-track needs an --incident reference")
            self._resolve_request_first(ref)  # the registry is asked before the transaction
            now = self.clock()
            with self.engine.begin() as connection:
                actor = self.actor(connection, actor_name)
                request = self._open(connection, ref, now)
                if actor.role not in ("team_lead", "operations", "admin"):
                    raise NotPermittedError(
                        f"a fast-track needs a team_lead, operations or admin; {actor.name} is a "
                        f"{actor.role}"
                    )
                check_team(connection, actor, request, f"a fast-track of #{request['number']}")
                self._security_check(connection, request, f"request #{request['number']}")
                connection.execute(
                    update(ApprovalStep)
                    .where(ApprovalStep.request_id == request["id"])
                    .where(ApprovalStep.decision == "pending")
                    .values(decision="skipped", decided_by=actor.name, reason=reason,
                            decided_at=now)
                )  # fmt: skip
                connection.execute(
                    update(DeploymentRequest)
                    .where(DeploymentRequest.id == request["id"])
                    .values(status="approved", fast_track=True, incident_ref=incident,
                            decided_at=now, updated_at=now)
                )  # fmt: skip
                append_event(
                    connection,
                    actor=actor.name,
                    action="deploy.fast_track",
                    target=f"request #{request['number']}",
                    details={"reason": reason, "incident": incident},
                )
            request |= {"status": "approved", "fast_track": True, "incident_ref": incident}
            roles = self.chains[request["environment_group"]]
            self._announce(request, "approval_requested", *roles, fast_track=True)
            return request

        return self._guarded(actor_name, "deploy.fast_track", f"request {ref}", change)

    def review(self, actor_name: str, ref: str, note: str) -> dict[str, Any]:
        """The mandatory after-the-fact review of a fast-tracked request."""

        def change() -> dict[str, Any]:
            from sqlalchemy import update

            if not note or not note.strip():
                raise RequestError("a review needs a --note")
            now = self.clock()
            with self.engine.begin() as connection:
                actor = self.actor(connection, actor_name)
                request = self.find(connection, ref)
                if not request["fast_track"]:
                    raise RequestError(f"request #{request['number']} was not fast-tracked")
                if request["post_review_at"] is not None:
                    raise RequestError(
                        f"request #{request['number']} was reviewed by "
                        f"{request['post_review_by']} already"
                    )
                if actor.name == request["requested_by"] or actor.role not in (
                    "team_lead",
                    "operations",
                    "admin",
                ):
                    raise NotPermittedError(
                        "the review must be by a team_lead, operations or admin other than the "
                        "requester"
                    )
                check_team(connection, actor, request, f"the review of #{request['number']}")
                connection.execute(
                    update(DeploymentRequest)
                    .where(DeploymentRequest.id == request["id"])
                    .values(post_review_by=actor.name, post_review_at=now,
                            post_review_note=note, updated_at=now)
                )  # fmt: skip
                append_event(
                    connection,
                    actor=actor.name,
                    action="deploy.review",
                    target=f"request #{request['number']}",
                    details={"note": note},
                )
            return request | {"post_review_by": actor.name, "post_review_at": now}

        return self._guarded(actor_name, "deploy.review", f"request {ref}", change)
