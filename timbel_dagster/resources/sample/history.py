"""The sample organisation's 90 days: builds, promotions to staging and prod, incidents.

Deterministic: the same seed and end date give the same history, byte for byte. Production
releases fail more often when they ship more churn, at night and on Fridays; a failed rollout
is rolled back, and a release that breaks later opens an incident closed by a hotfix.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
from dataclasses import dataclass

from timbel_dagster.records.delivery import (
    CommitRecord,
    DeploymentRecord,
    ExecutionRecord,
    IncidentRecord,
    PipelineRecord,
)
from timbel_dagster.resources.sample.builds import LOCAL, SampleBuilder, sigmoid
from timbel_dagster.resources.sample.organisation import (
    CLUSTERS,
    SAMPLE_DOMAIN,
    SERVICES,
    SampleService,
    developers_of,
    pipeline_name_of,
    pipeline_url_of,
    repository_of,
)

DAYS = 90
_CLUSTER_OF = {c.environment_group: c.name for c in CLUSTERS}
_RELEASERS = ("sungmin.oh", "daeun.seo")


@dataclass(frozen=True)
class SampleHistory:
    """Immutable (tuples of frozen records), so one generated history can be shared."""

    pipelines: tuple[PipelineRecord, ...]
    commits: tuple[CommitRecord, ...]
    executions: tuple[ExecutionRecord, ...]
    deployments: tuple[DeploymentRecord, ...]
    incidents: tuple[IncidentRecord, ...]


def _local(day: dt.date, hour: float) -> dt.datetime:
    moment = dt.datetime.combine(day, dt.time(), LOCAL) + dt.timedelta(hours=hour)
    return moment.astimezone(dt.UTC)


class _Releases:
    """Promotion of one service's green builds: dev on every build, staging daily, prod."""

    def __init__(self, builder: SampleBuilder, rng: random.Random) -> None:
        self.builder, self.rng, self.service = builder, rng, builder.service
        self.deployments: list[DeploymentRecord] = []
        self.incidents: list[IncidentRecord] = []
        self.staged: int | None = None  # commit index on staging
        self.shipped = -1  # last commit index successfully shipped to prod
        self.releases = 0

    def _deploy(
        self,
        env: str,
        commit_index: int,
        at: dt.datetime,
        *,
        shipped_from: int,
        status: str = "success",
        kind: str = "release",
        execution: str | None = None,
        by: str | None = None,
        minutes: float = 4.0,
    ) -> DeploymentRecord:
        commits = self.builder.history.commits
        sha = commits[commit_index].sha
        version = f"1.{self.releases}.{len(self.deployments)}"
        deployment = DeploymentRecord(
            external_id=f"{self.service.name}-{env}-{len(self.deployments) + 1:05d}",
            service=self.service.name,
            environment=env,
            cluster=_CLUSTER_OF[env],
            image=f"registry.{SAMPLE_DOMAIN}/{self.service.team}/{self.service.name}:{sha[:7]}",
            version=version,
            commit_from=commits[shipped_from].sha if shipped_from >= 0 else None,
            commit_to=sha,
            kind=kind,
            status=status,
            started_at=at,
            completed_at=at + dt.timedelta(minutes=minutes * self.rng.lognormvariate(0, 0.3)),
            triggered_by=by or commits[commit_index].author,
            execution=(pipeline_name_of(self.service), execution) if execution else None,
            commits=tuple(
                (c.repository, c.sha) for c in commits[shipped_from + 1 : commit_index + 1]
            ),
        )
        self.deployments.append(deployment)
        return deployment

    def dev(self, commit_index: int, execution: ExecutionRecord) -> None:
        assert execution.completed_at is not None
        self._deploy(
            "dev",
            commit_index,
            execution.completed_at - dt.timedelta(minutes=1.2),
            shipped_from=commit_index - 1,
            execution=execution.external_id,
        )

    def staging(self, day: dt.date) -> None:
        green = [g for g in self.builder.history.green_builds if g[2] < _local(day, 15)]
        if green and green[-1][0] != self.staged and self.rng.random() < 0.9:
            commit_index = green[-1][0]
            self._deploy(
                "staging",
                commit_index,
                _local(day, 15 + self.rng.random()),
                shipped_from=self.staged if self.staged is not None else -1,
                by=self.rng.choice(_RELEASERS),
            )
            self.staged = commit_index

    def prod(self, day: dt.date, day_index: int) -> None:
        if self.staged is None or self.staged <= self.shipped or self.rng.random() > 0.55:
            return
        night = self.rng.random() < 0.15
        at = _local(day, 22.5 if night else 17 + self.rng.random())
        commits = self.builder.history.commits[self.shipped + 1 : self.staged + 1]
        churn = sum(c.metrics["la"] + c.metrics["ld"] for c in commits)
        log_odds = (
            -5.9
            + 0.55 * math.log1p(churn)
            + 0.3 * max(c.metrics["entropy"] for c in commits)
            + (0.9 if night else 0)
            + (0.5 if day.weekday() == 4 else 0)
            + self.service.risk_bias
        )
        failed = self.rng.random() < sigmoid(log_odds)
        mode = self.rng.choice(["rollout", "incident"]) if failed else None
        self.releases += 1
        release = self._deploy(
            "prod",
            self.staged,
            at,
            shipped_from=self.shipped,
            status="failed" if mode == "rollout" else "success",
            by=self.rng.choice(_RELEASERS),
            minutes=6.0,
        )
        if mode is None:
            self.shipped = self.staged
            return
        assert release.completed_at is not None
        if mode == "rollout":
            # The rollout never became healthy: roll back to the last good version.
            back = self._deploy(
                "prod",
                max(self.shipped, 0),
                release.completed_at + dt.timedelta(minutes=self.rng.uniform(3, 20)),
                shipped_from=max(self.shipped, 0),
                kind="rollback",
                by="timbel-autorollback",
                minutes=3.0,
            )
            self._incident(release, "sev3", "Rollout failed health checks", at, back)
            return
        # The release went out and broke in production: an incident, fixed by a hotfix.
        self.shipped = self.staged
        opened = release.completed_at + dt.timedelta(minutes=self.rng.uniform(10, 180))
        repair_hours = self.rng.lognormvariate(math.log(2.0), 0.8)
        fix_at = opened + dt.timedelta(hours=repair_hours)
        fix_index = self.builder.commit(fix_at - dt.timedelta(minutes=40), fix=True, small=True)
        execution = self.builder.build(fix_index, day_index)
        hotfix = self._deploy(
            "prod",
            fix_index,
            fix_at,
            shipped_from=self.shipped,
            kind="hotfix",
            execution=execution.external_id,
            minutes=5.0,
        )
        self.shipped = fix_index
        self._incident(release, "sev2", "Error rate above SLO after release", opened, hotfix)

    def _incident(
        self,
        cause: DeploymentRecord,
        severity: str,
        title: str,
        opened: dt.datetime,
        restore: DeploymentRecord,
    ) -> None:
        self.incidents.append(
            IncidentRecord(
                external_id=f"INC-{self.service.name}-{len(self.incidents) + 1:04d}",
                service=self.service.name,
                environment="prod",
                severity=severity,
                title=f"{self.service.name}: {title}",
                opened_at=opened,
                resolved_at=restore.completed_at,
                caused_by_deployment=cause.external_id,
                restored_by_deployment=restore.external_id,
            )
        )


def _service_history(
    service: SampleService, seed: int, start: dt.date, days: int
) -> tuple[SampleBuilder, _Releases]:
    # A string seed is hashed deterministically by `random` (unlike `hash()`).
    rng = random.Random(f"timbel-sample:{seed}:{service.name}")
    builder = SampleBuilder(service, rng, developers_of(service.team))
    releases = _Releases(builder, rng)
    for day_index in range(days):
        day = start + dt.timedelta(days=day_index)
        weekday = day.weekday() < 5
        rate = service.commits_per_weekday * (1.0 if weekday else 0.12)
        hours = sorted(
            min(23.5, max(7.0, rng.gauss(14.0, 3.2))) for _ in range(_poisson(rng, rate))
        )
        for hour in hours:
            index = builder.commit(_local(day, hour))
            execution = builder.build(index, day_index)
            if execution.status == "success":
                releases.dev(index, execution)
        if weekday:
            releases.staging(day)
            releases.prod(day, day_index)
    return builder, releases


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means used here.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


# Every step of a run builds its own resource, so without the cache one demo generated the
# same history (about 0.6 s) once per step; the result is immutable and a few MB.
@functools.lru_cache(maxsize=4)
def generate_history(end_date: dt.date, seed: int = 7, days: int = DAYS) -> SampleHistory:
    """The sample organisation's history over the `days` days before `end_date`."""
    start = end_date - dt.timedelta(days=days)
    pipelines, commits, executions, deployments, incidents = [], [], [], [], []
    for service in SERVICES:
        builder, releases = _service_history(service, seed, start, days)
        pipelines.append(
            PipelineRecord(
                ci_system=service.ci_system,
                name=pipeline_name_of(service),
                service=service.name,
                repository=repository_of(service),
                default_branch="main",
                url=pipeline_url_of(service),
            )
        )
        commits += builder.history.commits
        executions += builder.history.executions
        deployments += releases.deployments
        incidents += releases.incidents
    return SampleHistory(
        tuple(pipelines), tuple(commits), tuple(executions), tuple(deployments), tuple(incidents)
    )
