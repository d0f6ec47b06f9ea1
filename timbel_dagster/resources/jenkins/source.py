"""Jenkins as a CI source, and the Dagster resource that builds it from settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cached_property

import dagster as dg

from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord, RejectRecord
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import SourceDataError
from timbel_dagster.resources.jenkins.api import JenkinsAPI
from timbel_dagster.resources.jenkins.client import JenkinsHTTP
from timbel_dagster.resources.jenkins.parse import JenkinsJob, with_stages
from timbel_dagster.settings import get_settings

STAGE_MODES = ("recent", "all", "none")


class JenkinsSource:
    """Pipelines are the configured jobs; executions their builds, with stages.

    Stage policy (`stages`): `recent` reads the stages of each job's newest runs in one
    `wfapi/runs` request and describes any other build that started within `stage_lookback`
    one by one; `all` describes every build it has no stages for (a full backfill costs one
    request per build); `none` skips stages. Builds named in `final` are stored and finished
    already: their stages are not read again.
    """

    name = "jenkins"

    def __init__(
        self,
        api: JenkinsAPI,
        roots: list[str],
        stages: str = "recent",
        stage_lookback: dt.timedelta = dt.timedelta(days=2),
    ) -> None:
        if stages not in STAGE_MODES:
            raise ValueError(f"stages must be one of {', '.join(STAGE_MODES)}, not {stages!r}")
        self.api, self.roots, self.stage_mode, self.stage_lookback = (
            api,
            roots,
            stages,
            stage_lookback,
        )

    @property
    def requests_made(self) -> int:
        return self.api.http.requests_made

    @cached_property
    def _tree(self) -> tuple[list[JenkinsJob], list[RejectRecord]]:
        return self.api.job_tree(self.roots)

    @property
    def jobs(self) -> list[JenkinsJob]:
        return self._tree[0]

    def pipelines(self) -> list[PipelineRecord | RejectRecord]:
        """The jobs as pipelines, and the entries of the job tree that could not be parsed."""
        return [
            PipelineRecord(
                ci_system="jenkins",
                name=job.full_name,
                service=job.service,
                repository=None,
                default_branch=None,
                url=job.url,
            )
            for job in self.jobs
        ] + self._tree[1]

    def executions(
        self,
        since: dt.datetime,
        until: dt.datetime,
        final: frozenset[tuple[str, str]] = frozenset(),
    ) -> Iterator[ExecutionRecord | RejectRecord]:
        recent_cutoff = dt.datetime.now(dt.UTC) - self.stage_lookback
        for job in self.jobs:
            if job.last_build is None:
                continue
            builds = [
                b
                for b in self.api.builds(job.full_name, started_after=since)
                if isinstance(b, RejectRecord) or (b.started_at and b.started_at < until)
            ]
            wanting = [
                b
                for b in builds
                if isinstance(b, ExecutionRecord) and (job.full_name, b.external_id) not in final
            ]
            recent, unplaced = (
                self.api.recent_stages(job.full_name)
                if (wanting and self.stage_mode != "none")
                else ({}, [])
            )
            yield from unplaced
            for build in builds:
                if isinstance(build, RejectRecord):
                    yield build
                    continue
                if (job.full_name, build.external_id) in final or self.stage_mode == "none":
                    yield build
                    continue
                stages = recent.get(build.sequence or 0)
                if stages is None and (
                    self.stage_mode == "all"
                    or (build.started_at and build.started_at >= recent_cutoff)
                ):
                    stages = self.api.stages_or_reject(job.full_name, build.sequence or 0)
                if isinstance(stages, RejectRecord):
                    yield stages  # the build is stored without them
                    stages = ()
                yield with_stages(build, stages or ())

    def pipeline(self, job: str) -> PipelineRecord:
        """One job as a pipeline (one request)."""
        jobs = list(self.api.jobs_under(job))
        if len(jobs) == 1 and isinstance(jobs[0], RejectRecord):
            raise SourceDataError("jenkins", job, jobs[0].reason)
        if len(jobs) != 1 or isinstance(jobs[0], RejectRecord) or jobs[0].full_name != job:
            raise ValueError(f"jenkins {job}: a folder, not a job that builds")
        found = jobs[0]
        return PipelineRecord(
            ci_system="jenkins",
            name=found.full_name,
            service=found.service,
            repository=None,
            default_branch=None,
            url=found.url,
        )

    def execution(self, job: str, number: int, read_stages: bool = True) -> ExecutionRecord:
        """One build, with its stages once it has any."""
        build = self.api.build(job, number)
        stages = self.api.stages(job, number) if read_stages else ()
        return with_stages(build, stages)


class JenkinsResource(dg.ConfigurableResource):
    """A Jenkins server. Unset fields come from JENKINS_URL, JENKINS_USER, JENKINS_TOKEN,
    JENKINS_JOBS and JENKINS_TIMEOUT_SECONDS when a run first uses it."""

    url: str | None = None
    user: str | None = None
    token: str | None = None
    jobs: list[str] | None = None
    timeout_seconds: float | None = None
    stages: str = "recent"
    retry_backoff_seconds: float = 0.5  # first retry's wait; doubles each time

    def api(self) -> JenkinsAPI:
        settings = get_settings()
        url = self.url or (str(settings.jenkins_url) if settings.jenkins_url else None)
        if not url:
            raise SourceNotConfiguredError(
                "Jenkins is not configured: set JENKINS_URL, JENKINS_USER and JENKINS_TOKEN"
            )
        token = self.token or (
            settings.jenkins_token.get_secret_value() if settings.jenkins_token else None
        )
        return JenkinsAPI(
            JenkinsHTTP(
                url,
                self.user or settings.jenkins_user,
                token,
                timeout=self.timeout_seconds or settings.jenkins_timeout_seconds,
                backoff_seconds=self.retry_backoff_seconds,
            )
        )

    def source(self) -> JenkinsSource:
        roots = self.jobs if self.jobs is not None else get_settings().jenkins_jobs
        return JenkinsSource(self.api(), roots, stages=self.stages)

    def configured(self) -> bool:
        return bool(self.url or get_settings().jenkins_url)
