"""GitLab CI as a CI source, and the Dagster resource that builds it from settings."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import dagster as dg

from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord, RejectRecord
from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import SourceDataError, SourceError
from timbel_dagster.resources.payload import record_id, reject
from timbel_dagster.settings import get_settings

if TYPE_CHECKING:
    from timbel_dagster.resources.gitlab.client import GitLabHTTP


@dataclass(frozen=True)
class JobState:
    """Where one job of a pipeline stands, for following its trace."""

    id: int
    name: str
    status: str  # GitLab's own job status
    ended: bool = False  # GitLab says when it finished (`finished_at`), whatever its status
    web_url: str | None = None  # the job's page, where its whole trace can be read


class GitLabSource:
    """Pipelines are the configured projects; executions their pipelines, jobs as stages.

    Per project and window: the pipelines list (`updated_after`, 100 a page) and one
    keyset-paginated walk of the project's jobs, newest first, as far back as the oldest
    pipeline still wanted. Pipelines stored as finished that GitLab also reports finished are
    final and cost nothing more.
    """

    name = "gitlab"

    def __init__(self, http: GitLabHTTP, projects: list[str]) -> None:
        self.http, self.projects = http, projects
        self._offset_only: set[str] = set()  # projects whose server lacks keyset for jobs

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    @cached_property
    def _projects(self) -> list[tuple[str, PipelineRecord]]:
        # lazy: resources.gitlab.client loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.client import project_ref
        from timbel_dagster.resources.gitlab.parse import parse_project

        return [
            (
                project_ref(p),
                parse_project(self.http.get(f"/projects/{project_ref(p)}", f"project {p}")),
            )
            for p in self.projects
        ]

    def pipelines(self) -> list[PipelineRecord]:
        return [record for _, record in self._projects]

    def newest_pipelines(self) -> dict[str, tuple[int, str]]:
        """Each project's newest pipeline id and status: one request per project (the
        sensor's tick).

        Projects configured by path need no other request; a numeric id costs one more to
        learn the project's path, which is its pipeline name.
        """
        # lazy: resources.gitlab.client loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.client import project_ref

        if all(not p.isdigit() for p in self.projects):
            named = [(project_ref(p), p) for p in self.projects]
        else:
            named = [(ref, record.name) for ref, record in self._projects]
        latest = {}
        for ref, name in named:
            # pipelines come newest first; reading one item costs one request
            for item in self.http.pages(
                f"/projects/{ref}/pipelines", name, objects_only=False, per_page=1
            ):
                # an unparsable newest pipeline is left to the ingestion run (which keeps it
                # as a reject): the tick just sees no new pipeline for the project yet
                if (number := record_id(item)) is not None:
                    latest[name] = (number, str(item.get("status", "")))
                break
        return latest

    def executions(
        self,
        since: dt.datetime,
        until: dt.datetime,
        final: frozenset[tuple[str, str]] = frozenset(),
    ) -> Iterator[ExecutionRecord | RejectRecord]:
        # lazy: resources.gitlab.parse loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.parse import (
            FINISHED,
            PIPELINE_STATUSES,
            listed_pipeline,
            parse_job,
            parse_pipeline,
        )

        for ref, record in self._projects:
            project = record.name
            listed: dict[int, dict] = {}
            for item in self.http.pages(
                f"/projects/{ref}/pipelines",
                project,
                objects_only=False,
                updated_after=since.isoformat(),
                order_by="id",
                sort="desc",
            ):
                try:
                    pipeline_id, created = listed_pipeline(item, project)
                except SourceDataError as error:
                    yield reject("pipeline", project, item, error)
                    continue
                if since <= created < until:
                    listed[pipeline_id] = item
            wanted = {
                pipeline_id: p
                for pipeline_id, p in listed.items()
                if not (
                    (project, str(pipeline_id)) in final
                    and PIPELINE_STATUSES.get(p.get("status", "")) in FINISHED
                )
            }
            if not wanted:
                continue
            oldest = min(wanted)
            jobs = defaultdict(list)
            for item in self._project_jobs(ref, project):
                try:
                    pipeline_id, job = parse_job(project, item)
                    job_created = job.iso("created_at", default=None)
                except SourceDataError as error:
                    owner = item.get("pipeline") if isinstance(item, dict) else None
                    if record_id(owner) is None or record_id(owner) in wanted:
                        # a job is no execution: no sequence for the marks
                        yield dataclasses.replace(
                            reject("job", project, item, error), sequence=None
                        )
                    continue  # a job of a pipeline not wanted now is read with that pipeline
                if pipeline_id in wanted:
                    jobs[pipeline_id].append(job)
                elif pipeline_id < oldest and (job_created or since) < since:
                    break  # jobs are newest first: the rest belong to older pipelines
            for pipeline_id, data in sorted(wanted.items()):
                try:
                    yield parse_pipeline(project, data, jobs[pipeline_id])
                except SourceDataError as error:
                    raw = {"pipeline": data, "jobs": [j.data for j in jobs[pipeline_id]]}
                    yield dataclasses.replace(
                        reject("pipeline", project, data, error),
                        payload=raw,
                    )

    def _project_jobs(self, ref: str, project: str) -> Iterator[Any]:
        """The project's jobs, newest first: keyset pages where the server offers them, else
        offset pages (GitLab before keyset support for jobs answers 405 and says so)."""

        path = f"/projects/{ref}/jobs"
        if ref not in self._offset_only:
            try:
                yield from self.http.pages(
                    path,
                    project,
                    objects_only=False,
                    pagination="keyset",
                    order_by="id",
                    sort="desc",
                )
                return
            except SourceError as error:
                if "keyset pagination is not yet available" not in str(error).lower():
                    raise
                self._offset_only.add(ref)
        # offset pages, newest first by default
        yield from self.http.pages(path, project, objects_only=False)

    def pipeline(self, project: str) -> PipelineRecord:
        # lazy: resources.gitlab.client loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.client import project_ref
        from timbel_dagster.resources.gitlab.parse import parse_project

        return parse_project(
            self.http.get(f"/projects/{project_ref(project)}", f"project {project}")
        )

    def _raw_jobs(self, project: str, pipeline_id: int) -> list[dict]:
        # lazy: resources.gitlab.client loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.client import project_ref

        obj = f"{project} pipeline {pipeline_id}"
        jobs = list(
            self.http.pages(
                f"/projects/{project_ref(project)}/pipelines/{pipeline_id}/jobs",
                obj,
                include_retried="true",
            )
        )
        return sorted(jobs, key=lambda job: int(job.get("id", 0)))

    def execution(self, project: str, pipeline_id: int) -> ExecutionRecord:
        """One pipeline with its jobs as stages (two requests)."""
        # lazy: resources.gitlab.client loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.client import project_ref
        from timbel_dagster.resources.gitlab.parse import parse_job, parse_pipeline

        path = self.pipeline(project).name if project.isdigit() else project
        data = self.http.get(
            f"/projects/{project_ref(project)}/pipelines/{pipeline_id}",
            f"{path} pipeline {pipeline_id}",
        )
        jobs = [parse_job(path, job)[1] for job in self._raw_jobs(project, pipeline_id)]
        return parse_pipeline(path, data, jobs)

    def pipeline_jobs(self, project: str, pipeline_id: int) -> list[JobState]:
        """The jobs of one pipeline, retried ones included, oldest first."""
        # lazy: resources.gitlab.parse loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.parse import parse_job

        states = []
        for raw in self._raw_jobs(project, pipeline_id):
            _pipeline, job = parse_job(project, raw)
            states.append(
                JobState(
                    job.get("id", int),
                    job.get("name", str),
                    job.get("status", str, default=None) or "",
                    ended=job.get("finished_at", str, default=None) is not None,
                    web_url=job.get("web_url", str, default=None),
                )
            )
        return states

    @contextmanager
    def trace(self, project: str, job_id: int, start: int = 0) -> Iterator[Iterator[bytes]]:
        """A job's trace from byte `start` on, as blocks (a ranged read where GitLab allows)."""
        # lazy: resources.gitlab.client loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.client import project_ref

        with self.http.stream(
            f"/projects/{project_ref(project)}/jobs/{job_id}/trace",
            f"{project} job {job_id}",
            start=start,
        ) as blocks:
            yield blocks


class GitLabResource(dg.ConfigurableResource):
    """A GitLab server. Unset fields come from GITLAB_URL, GITLAB_TOKEN, GITLAB_PROJECTS and
    GITLAB_MAX_REQUESTS_PER_SECOND when a run first uses it."""

    url: str | None = None
    token: str | None = None
    projects: list[str] | None = None
    max_requests_per_second: float | None = None

    def http(self) -> GitLabHTTP:
        # lazy: resources.gitlab.client loads requests; the code location loads without it
        from timbel_dagster.resources.gitlab.client import GitLabHTTP

        settings = get_settings()
        url = self.url or (str(settings.gitlab_url) if settings.gitlab_url else None)
        if not url:
            raise SourceNotConfiguredError(
                "GitLab is not configured: set GITLAB_URL, GITLAB_TOKEN and GITLAB_PROJECTS"
            )
        token = self.token or (
            settings.gitlab_token.get_secret_value() if settings.gitlab_token else None
        )
        return GitLabHTTP(
            url,
            token,
            max_requests_per_second=self.max_requests_per_second
            or settings.gitlab_max_requests_per_second,
        )

    def source(self) -> GitLabSource:
        http = self.http()  # first: without GITLAB_URL, say that GitLab is not configured
        projects = self.projects if self.projects is not None else get_settings().gitlab_projects
        if not projects:
            raise SourceNotConfiguredError(
                "GITLAB_PROJECTS is empty: name the project ids or paths to read (comma-separated)"
            )
        return GitLabSource(http, projects)

    def configured(self) -> bool:
        return bool(self.url or get_settings().gitlab_url)
