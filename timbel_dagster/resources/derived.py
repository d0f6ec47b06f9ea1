"""Deployments and incidents derived from CI executions already in the warehouse.

Besides the deployments Timbel's own deploy and rollback jobs record (source `timbel`), live
mode reads them where teams run them: in CI. A deployment is a finished stage (Jenkins stage,
GitLab job) whose name matches the deploy pattern; its environment is `prod` when the stage
name matches the production pattern, `staging` when it names staging, `dev` otherwise. As in
DORA's Four Keys, a failed production deployment opens an incident, and the next successful
production deployment of the same service restores it. Commits are linked when the warehouse
knows them (`cicd/commits`, which later links every commit a deployment shipped). A row
repeating one of Timbel's own (same service, environment and commit) is stored but counted
once: see `warehouse/read/frames.py`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from timbel_dagster.records.delivery import (
    ClusterRecord,
    CommitRecord,
    DeploymentRecord,
    IncidentRecord,
    StoredStage,
    UserRecord,
)

_STAGING = re.compile(r"(?i)stag")

# The finished stages of a CI source's stored executions in [since, until): the warehouse's
# answer, handed in by the caller (WarehouseResource.stored_stages), so this client reads
# records and never imports storage.
StoredStages = Callable[[str, dt.datetime, dt.datetime], list[StoredStage]]


class CIDerivedHistory:
    """A delivery-history source over the warehouse's own CI executions."""

    def __init__(
        self, stages: StoredStages, source: str, deploy_pattern: str, production_pattern: str
    ) -> None:
        self.stages, self.name = stages, source
        self.deploy, self.production = re.compile(deploy_pattern), re.compile(production_pattern)

    def users(self) -> list[UserRecord]:
        return []  # people come from `timbel` user management, not from CI

    def clusters(self) -> list[ClusterRecord]:
        return []  # clusters come from TIMBEL_CLUSTERS_FILE

    def commits(self, since: dt.datetime, until: dt.datetime) -> list[CommitRecord]:
        return []  # commits with change metrics come from the repositories themselves

    def _environment(self, stage: str) -> str:
        if self.production.search(stage):
            return "prod"
        return "staging" if _STAGING.search(stage) else "dev"

    def deployments(self, since: dt.datetime, until: dt.datetime) -> list[DeploymentRecord]:
        found = []
        for row in self.stages(self.name, since, until):
            if not self.deploy.search(row.stage):
                continue
            found.append(
                DeploymentRecord(
                    external_id=f"{row.pipeline}#{row.build}/{row.stage_id}",
                    service=row.service or row.pipeline,
                    environment=self._environment(row.stage),
                    cluster=None,
                    image=None,
                    version=row.commit_sha[:12] if row.commit_sha else None,
                    commit_from=None,
                    commit_to=row.commit_sha,
                    kind="release",
                    status="success" if row.status == "success" else "failed",
                    started_at=row.started_at,
                    completed_at=row.started_at + dt.timedelta(seconds=row.duration or 0),
                    triggered_by=row.triggered_by,
                    execution=(row.pipeline, row.build),
                    commits=(
                        ((row.repository, row.commit_sha),)
                        if row.repository and row.commit_sha
                        else ()
                    ),
                )
            )
        return found

    def incidents(self, since: dt.datetime, until: dt.datetime) -> list[IncidentRecord]:
        """A failed production deployment opens one; the service's next success restores it."""
        open_by_service: dict[str, DeploymentRecord] = {}
        found = []
        for deployment in self.deployments(since, until):
            if deployment.environment != "prod":
                continue
            opened = open_by_service.get(deployment.service)
            if deployment.status == "failed" and opened is None:
                open_by_service[deployment.service] = deployment
            elif deployment.status == "success" and opened is not None:
                found.append(self._incident(opened, deployment))
                del open_by_service[deployment.service]
        found += [self._incident(o, None) for o in open_by_service.values()]
        return found

    def _incident(
        self, cause: DeploymentRecord, restore: DeploymentRecord | None
    ) -> IncidentRecord:
        return IncidentRecord(
            external_id=f"failed-deploy:{cause.external_id}",
            service=cause.service,
            environment="prod",
            severity="unknown",
            title=f"{cause.service}: production deployment failed",
            opened_at=cause.completed_at or cause.started_at,
            resolved_at=restore.completed_at if restore else None,
            caused_by_deployment=cause.external_id,
            restored_by_deployment=restore.external_id if restore else None,
        )
