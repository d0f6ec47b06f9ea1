"""What Timbel asks Jenkins, each in as few requests as the API allows.

- Jobs: one `tree=` query returns three levels of folders with every job's last build number;
  only deeper folders cost another request.
- Builds: `allBuilds[...]{M,N}` pages (Jenkins' `builds` stops at 100), newest first, only
  as far back as the caller's high-water mark.
- Stages: `wfapi/runs` returns the newest runs with their stages in one request (the Pipeline
  REST API caps it at 11 runs); older builds need `wfapi/describe` one by one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from timbel_dagster.records.delivery import ExecutionRecord, RejectRecord, StageRecord
from timbel_dagster.resources.errors import SourceDataError, SourceError, SourceNotFoundError
from timbel_dagster.resources.jenkins.client import SYSTEM, JenkinsHTTP, job_path
from timbel_dagster.resources.jenkins.parse import (
    JenkinsJob,
    job_fields,
    parse_build,
    parse_job,
    parse_stages,
)
from timbel_dagster.resources.payload import Fields, record_id, reject

_JOB_FIELDS = "name,fullName,url,_class,lastBuild[number,building]"
_JOB_TREE = f"jobs[{_JOB_FIELDS},jobs[{_JOB_FIELDS},jobs[{_JOB_FIELDS}]]]"
BUILD_FIELDS = (
    "number,result,building,timestamp,duration,url,"
    "actions[queuingDurationMillis,causes[userId,shortDescription],"
    "lastBuiltRevision[SHA1,branch[name]]],"
    "artifacts[fileName,relativePath]"
)
WFAPI_RUNS_CAP = 11  # JobExt.MAX_RUNS_PER_JOB (10) + 1 in the Pipeline REST API
Stages = tuple[StageRecord, ...]


def job_reject(raw: object, error: SourceDataError) -> RejectRecord:
    """An entry of the job tree that cannot be parsed, keyed by its name when readable."""
    name = None
    if isinstance(raw, dict):
        name = next((v for k in ("fullName", "name") if isinstance(v := raw.get(k), str)), None)
    base = reject("pipeline", name or "", raw, error)
    return dataclasses.replace(base, key=name or base.key, sequence=None)


def build_or_reject(job: str, raw: object, path: str) -> ExecutionRecord | RejectRecord:
    """One `allBuilds` entry as an execution, or as a reject when it cannot be parsed."""
    try:
        return parse_build(job, Fields(SYSTEM, job, raw, path))
    except SourceDataError as error:
        return reject("build", job, raw, error, id_field="number")


def stages_or_reject(job: str, obj: str, run: object, path: str = "") -> Stages | RejectRecord:
    """The stages of one wfapi run, or a reject (kind `stages`) naming the run's build."""
    try:
        fields = Fields(SYSTEM, obj, run, path)
        fields.get("stages", list)  # every run has the list (empty before any stage): required
        return parse_stages(job, 0, fields.children("stages"))
    except SourceDataError as error:
        return reject("stages", job, run, error)


@dataclass(frozen=True)
class LogStream:
    blocks: Iterator[bytes]  # the log's bytes from the requested start, a block at a time
    next_start: int  # X-Text-Size: where the next request starts once all blocks are read
    more: bool  # X-More-Data: the build is still writing


def _wanted(
    build: ExecutionRecord | RejectRecord, newer_than: int, started_after: dt.datetime | None
) -> bool:
    if isinstance(build, RejectRecord):  # when a reject's number is unreadable, keep it
        return build.sequence is None or build.sequence > newer_than
    return (build.sequence or 0) > newer_than and (
        started_after is None or bool(build.started_at and build.started_at >= started_after)
    )


class JenkinsAPI:
    def __init__(self, http: JenkinsHTTP) -> None:
        self.http = http

    # -- jobs -------------------------------------------------------------------------------
    def _walk(
        self, items: list[object], path: str, depth: int, parent_kind: str | None = None
    ) -> Iterator[JenkinsJob | RejectRecord]:
        for index, raw in enumerate(items):
            try:
                item = Fields(SYSTEM, "job list", raw, f"{path}[{index}]")
                job = parse_job(item, parent_kind)
                children = item.get("jobs", list, default=None)
            except SourceDataError as error:
                yield job_reject(raw, error)
                continue
            if not job.is_folder:
                yield job
            elif depth < 3 and children is not None:
                yield from self._walk(children, f"{path}[{index}].jobs", depth + 1, job.kind)
            else:  # deeper than the tree query reached: ask the folder itself
                yield from self.jobs_under(job.full_name)

    def jobs_under(self, full_name: str | None = None) -> Iterator[JenkinsJob | RejectRecord]:
        """Every buildable job under a folder (or the whole server), folders walked; an entry
        of the tree that cannot be parsed comes as a reject (kind `pipeline`)."""
        path = f"{job_path(full_name)}/api/json" if full_name else "api/json"
        data = job_fields(
            full_name or "/",
            self.http.get_json(
                path, full_name or "job list", params={"tree": f"{_JOB_FIELDS},{_JOB_TREE}"}
            ),
        )
        root = parse_job(data)
        if full_name and not root.is_folder:
            yield root
            return
        items = data.get("jobs", list, default=[])
        yield from self._walk(items, "jobs", 1, root.kind if full_name else None)

    def job_tree(self, roots: list[str]) -> tuple[list[JenkinsJob], list[RejectRecord]]:
        """The configured jobs (`JENKINS_JOBS` entries, jobs or folders, or every job), and
        the entries of the tree that could not be parsed."""
        found: dict[str, JenkinsJob] = {}
        rejects: list[RejectRecord] = []
        for root in roots or [None]:  # type: ignore[list-item]
            for job in self.jobs_under(root):
                if isinstance(job, RejectRecord):
                    rejects.append(job)
                else:
                    found[job.full_name] = job
        return sorted(found.values(), key=lambda j: j.full_name), rejects

    def jobs(self, roots: list[str]) -> list[JenkinsJob]:
        """The configured jobs: `JENKINS_JOBS` entries (jobs or folders), or every job."""
        return self.job_tree(roots)[0]

    # -- builds -----------------------------------------------------------------------------
    def builds(
        self,
        job: str,
        newer_than: int = 0,
        started_after: dt.datetime | None = None,
        page_size: int = 500,
    ) -> list[ExecutionRecord | RejectRecord]:
        """Builds numbered above `newer_than` (and started after `started_after`), newest
        first, read in `{M,N}` pages only as far back as needed. An entry that cannot be
        parsed comes back as a `RejectRecord` in its place."""
        found: list[ExecutionRecord | RejectRecord] = []
        start = 0
        while True:
            tree = f"allBuilds[{BUILD_FIELDS}]{{{start},{start + page_size}}}"
            data = job_fields(
                job, self.http.get_json(f"{job_path(job)}/api/json", job, params={"tree": tree})
            )
            items = data.get("allBuilds", list, default=[])
            page = [build_or_reject(job, item, f"allBuilds[{i}]") for i, item in enumerate(items)]
            keep = [b for b in page if _wanted(b, newer_than, started_after)]
            found += keep
            numbers = [b.sequence for b in page if b.sequence is not None]
            oldest = numbers[-1] if numbers else None
            if len(page) < page_size or len(keep) < len(page) or oldest == 1:
                return found  # a short page, the mark reached, or build #1: nothing older
            start += page_size

    def build(self, job: str, number: int) -> ExecutionRecord:
        """One build (one request, whatever the job's history)."""
        obj = f"{job} #{number}"
        try:
            data = self.http.get_json(
                f"{job_path(job)}/{number}/api/json", obj, params={"tree": BUILD_FIELDS}
            )
        except SourceNotFoundError:
            raise SourceNotFoundError(SYSTEM, obj, "no such build") from None
        return parse_build(job, Fields(SYSTEM, obj, data))

    def recent_stages(
        self, job: str
    ) -> tuple[dict[int, Stages | RejectRecord], list[RejectRecord]]:
        """Stages of the newest runs of a Pipeline job in one request (up to 11 runs), by
        build number; a run whose stages cannot be parsed maps to its reject, and a run whose
        number cannot be read is returned apart, as a reject of its own."""
        try:
            runs = self.http.get_json(f"{job_path(job)}/wfapi/runs", job)
        except SourceNotFoundError:
            return {}, []  # not a Pipeline job (freestyle): no stages to read
        if not isinstance(runs, list):
            job_fields(job, runs).get("runs", list)  # raises a typed error naming the field
        stages: dict[int, Stages | RejectRecord] = {}
        unplaced: list[RejectRecord] = []
        for index, run in enumerate(runs):
            parsed = stages_or_reject(job, job, run, f"[{index}]")
            number = record_id(run)
            if number is None:
                error = SourceDataError(SYSTEM, job, "missing or not a build number", "id")
                unplaced.append(
                    parsed
                    if isinstance(parsed, RejectRecord)
                    else reject("stages", job, run, error)
                )
            else:
                stages[number] = parsed
        return stages, unplaced

    def stages(self, job: str, number: int) -> tuple[StageRecord, ...]:
        """Stages of one build (`wfapi/describe`)."""
        obj = f"{job} #{number}"
        try:
            data = self.http.get_json(f"{job_path(job)}/{number}/wfapi/describe", obj)
        except SourceNotFoundError:
            return ()
        return parse_stages(job, number, Fields(SYSTEM, obj, data).children("stages"))

    def stages_or_reject(self, job: str, number: int) -> Stages | RejectRecord:
        """`stages`, or a reject (kind `stages`) when the answer cannot be parsed."""
        obj = f"{job} #{number}"
        try:
            data = self.http.get_json(f"{job_path(job)}/{number}/wfapi/describe", obj)
        except SourceNotFoundError:
            return ()
        parsed = stages_or_reject(job, obj, data)
        if isinstance(parsed, RejectRecord) and parsed.sequence != number:
            parsed = dataclasses.replace(parsed, key=str(number), sequence=number)
        return parsed

    # -- logs and triggering ----------------------------------------------------------------
    def build_url(self, job: str, number: int) -> str:
        """The build's page on the server (`.../job/<name>/<number>/`)."""
        return f"{self.http.base}{job_path(job)}/{number}/"

    @contextmanager
    def log_stream(
        self, job: str, number: int, start: int, block_size: int = 1 << 20
    ) -> Iterator[LogStream]:
        """The console log from byte `start` on (`logText/progressiveText`), streamed in
        blocks so that a large log never sits in memory whole."""
        obj = f"{job} #{number}"
        response = self.http.request(
            "GET",
            f"{job_path(job)}/{number}/logText/progressiveText",
            obj,
            params={"start": start},
            stream=True,
        )
        try:
            size = response.headers.get("X-Text-Size")
            if size is None or not size.isdigit():
                raise SourceDataError(SYSTEM, obj, "missing or bad header", field="X-Text-Size")
            more = response.headers.get("X-More-Data", "").lower() == "true"
            yield LogStream(response.iter_content(block_size), int(size), more)
        finally:
            response.close()

    def trigger(self, job: str, parameters: dict[str, str]) -> int:
        """Queue a build; returns the queue item id from the `Location` header.

        The parameters go in a form body (as Jenkins' remote API documents: `curl --data`),
        not the URL's query, which proxies, Jenkins' access log and error messages record.
        """
        action = "buildWithParameters" if parameters else "build"
        response = self.http.post(f"{job_path(job)}/{action}", job, data=parameters or None)
        location = response.headers.get("Location", "").rstrip("/")
        item = location.rsplit("/", 1)[-1]
        if not item.isdigit():
            raise SourceDataError(SYSTEM, job, f"no queue item in {location!r}", field="Location")
        return int(item)

    def queued_build(self, queue_id: int) -> int | None:
        """The build number a queue item became, or None while it still waits."""
        obj = f"queue item {queue_id}"
        data = Fields(SYSTEM, obj, self.http.get_json(f"queue/item/{queue_id}/api/json", obj))
        if data.get("cancelled", bool, default=False):
            raise SourceError(SYSTEM, obj, "the queued build was cancelled")
        executable = data.get("executable", dict, default=None)
        return (
            Fields(SYSTEM, obj, executable, "executable").get("number", int) if executable else None
        )
