"""A loopback GitLab (REST API v4) that enforces pagination, auth and rate limiting rules.

Answers are built from `tests/fixtures/gitlab/` (see the fixtures README). Each pipeline has
jobs in three stages (build, test with parallel jobs, deploy); traces can grow while read.

Job traces and `Range`: GitLab's API answers `GET /projects/:id/jobs/:job_id/trace` with
`body build.trace.raw` (lib/api/ci/jobs.rb), the whole trace with 200 whatever `Range` asks
(gitlab-org/gitlab#30391 asks for ranged reads), so that is what `trace_ranges = "never"`
does. `"archived"` answers like a server that serves a finished job's trace as a file (a
proxy, Workhorse or object storage in front): `Range: bytes=N-` gets 206 with
`Content-Range`, or 416 past the end; a running job's trace is still sent whole.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from tests.fakes.gitlab_issues import IssueTracker
from tests.fakes.loopback import LoopbackServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gitlab"
PROJECT = json.loads((FIXTURES / "project.json").read_text())
PIPELINE = json.loads((FIXTURES / "pipeline.json").read_text())
JOB = json.loads((FIXTURES / "job.json").read_text())
JOB_PLAN = (
    ("build", "compile", 120.0),
    ("test", "unit-tests", 240.0),
    ("test", "integration-tests", 300.0),
    ("deploy", "deploy-review", 60.0),
)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class FakeJob:
    id: int
    pipeline_id: int
    stage: str
    name: str
    status: str
    created: dt.datetime
    duration: float
    trace: bytearray = field(default_factory=bytearray)
    artifacts: list[dict[str, Any]] | None = None  # None: the fixture's (the job log)
    artifacts_expire_at: dt.datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # fields to overwrite in its JSON


@dataclass
class FakePipeline:
    id: int
    project_id: int
    status: str
    created: dt.datetime
    ref: str = "main"
    sha: str = "a91957a858320c0e17f3a0eca7cfacbff50ea29a"
    user: str = "hana.jung"
    jobs: list[FakeJob] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # fields to overwrite in its JSON


class FakeGitLab(LoopbackServer):
    def __init__(self, token: str = "glpat-test-token") -> None:
        self.token = token
        self.projects: dict[int, str] = {}  # id -> path_with_namespace
        self.pipelines: dict[int, list[FakePipeline]] = {}  # project id -> oldest first
        self.rate_limit_every = 0  # answer every Nth request with 429 (0: never)
        self.retry_after = "0"
        self.keyset_jobs = True  # False: answer like a GitLab without keyset for jobs
        self.faults: deque[tuple[int, bytes, str]] = deque()
        self.requests: list[tuple[str, str, str]] = []
        self.trace_ranges = "never"  # or "archived" (see the module docstring)
        self.trace_requests: list[tuple[int, str | None, int]] = []  # job, Range, status
        self.lock = threading.Lock()
        super().__init__()
        self._next_pipeline, self._next_job = 1000, 50_000
        self.issues = IssueTracker(self)  # project issues and notes (gitlab_issues.py)

    # -- state ------------------------------------------------------------------------------
    def add_project(
        self,
        path: str,
        pipelines: int = 0,
        first: dt.datetime | None = None,
        every: dt.timedelta = dt.timedelta(hours=1),
    ) -> int:
        project_id = 10 + len(self.projects)
        self.projects[project_id] = path
        self.pipelines[project_id] = []
        start = first or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        for n in range(pipelines):
            self.add_pipeline(
                project_id, created=start + n * every, status="failed" if n % 6 == 5 else "success"
            )
        return project_id

    def add_pipeline(
        self, project_id: int, created: dt.datetime, status: str = "success", **values: Any
    ) -> FakePipeline:
        self._next_pipeline += 1
        pipeline = FakePipeline(self._next_pipeline, project_id, status, created, **values)
        for stage, name, seconds in JOB_PLAN:
            self._next_job += 1
            job_status = (
                "failed"
                if status == "failed" and name == "integration-tests"
                else (
                    "running"
                    if status == "running"
                    else ("skipped" if status == "failed" and stage == "deploy" else "success")
                )
            )
            pipeline.jobs.append(
                FakeJob(self._next_job, pipeline.id, stage, name, job_status, created, seconds)
            )
        self.pipelines[project_id].append(pipeline)
        return pipeline

    def retry_job(self, pipeline: FakePipeline, name: str) -> FakeJob:
        old = next(j for j in pipeline.jobs if j.name == name)
        self._next_job += 1
        job = FakeJob(
            self._next_job,
            pipeline.id,
            old.stage,
            old.name,
            "success",
            old.created + dt.timedelta(minutes=20),
            old.duration,
        )
        pipeline.jobs.append(job)
        return job

    def fail_next(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.faults.append((status, body, content_type))

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    # -- payloads ---------------------------------------------------------------------------
    def project_json(self, project_id: int) -> dict[str, Any]:
        path = self.projects[project_id]
        data = copy.deepcopy(PROJECT)
        name = path.rsplit("/", 1)[-1]
        data.update(
            id=project_id,
            name=name,
            path=name,
            path_with_namespace=path,
            web_url=f"{self.url}/{path}",
            http_url_to_repo=f"{self.url}/{path}.git",
        )
        return data

    def _times(self, job: FakeJob) -> tuple[dt.datetime, dt.datetime]:
        offset = {"build": 30, "test": 180, "deploy": 520}[job.stage]
        started = job.created + dt.timedelta(seconds=offset)
        return started, started + dt.timedelta(seconds=job.duration)

    def pipeline_json(self, p: FakePipeline) -> dict[str, Any]:
        data = copy.deepcopy(PIPELINE)
        path = self.projects[p.project_id]
        updated = max((self._times(j)[1] for j in p.jobs), default=p.created)
        data.update(
            id=p.id,
            iid=p.id - 1000,
            project_id=p.project_id,
            sha=p.sha,
            ref=p.ref,
            status=p.status,
            created_at=iso(p.created),
            updated_at=iso(updated),
            web_url=f"{self.url}/{path}/-/pipelines/{p.id}",
        )
        data.update(copy.deepcopy(p.raw))
        return data

    def job_json(self, p: FakePipeline, job: FakeJob) -> dict[str, Any]:
        data = copy.deepcopy(JOB)
        started, finished = self._times(job)
        running = job.status in ("running", "pending")
        data.update(
            id=job.id,
            status=job.status,
            stage=job.stage,
            name=job.name,
            ref=p.ref,
            created_at=iso(job.created),
            started_at=iso(started),
            finished_at=None if running else iso(finished),
            duration=None if running else job.duration,
            queued_duration=1.5,
            web_url=f"{self.url}/{self.projects[p.project_id]}/-/jobs/{job.id}",
        )
        data["user"]["username"] = p.user
        data["pipeline"] = {
            **data["pipeline"],
            **{k: v for k, v in self.pipeline_json(p).items() if k in data["pipeline"]},
        }
        if job.artifacts is not None:
            data["artifacts"] = copy.deepcopy(job.artifacts)
        if job.artifacts_expire_at is not None:
            data["artifacts_expire_at"] = iso(job.artifacts_expire_at)
        data.update(copy.deepcopy(job.raw))
        return data


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _handler(fake: FakeGitLab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(
            self,
            status: int,
            body: Any = None,
            headers: dict[str, str] | None = None,
            content_type: str = "application/json",
        ) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        def _page(self, items: list[Any], query: dict[str, str], path: str) -> None:
            per_page = min(int(query.get("per_page", "20")), 100)  # GitLab caps at 100
            base = f"{fake.url}{path}"
            if query.get("pagination") == "keyset":
                after = int(base64.b64decode(query["cursor"]).decode()) if "cursor" in query else 0
                chunk = items[after : after + per_page]
                headers = {}
                if after + per_page < len(items):
                    cursor = base64.b64encode(str(after + per_page).encode()).decode()
                    rest = {k: v for k, v in query.items() if k != "cursor"}
                    headers["Link"] = f'<{base}?{urlencode(rest | {"cursor": cursor})}>; rel="next"'
                return self._reply(200, chunk, headers)
            page = int(query.get("page", "1"))
            chunk = items[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(items)
            headers = {
                "X-Page": str(page),
                "X-Per-Page": str(per_page),
                "X-Total": str(len(items)),
                "X-Next-Page": str(page + 1) if more else "",
            }
            if more:
                headers["Link"] = (
                    f'<{base}?{urlencode(query | {"page": str(page + 1)})}>; rel="next"'
                )
            return self._reply(200, chunk, headers)

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            with fake.lock:
                fake.requests.append((method, split.path, split.query))
                count = len(fake.requests)
                fault = fake.faults.popleft() if fake.faults else None
            if fault:
                return self._reply(fault[0], fault[1], content_type=fault[2])
            if fake.rate_limit_every and count % fake.rate_limit_every == 0:
                return self._reply(
                    429, {"message": "429 Too Many Requests"}, {"Retry-After": fake.retry_after}
                )
            if self.headers.get("PRIVATE-TOKEN") != fake.token:
                return self._reply(401, {"message": "401 Unauthorized"})
            parts = [unquote(p) for p in split.path.removeprefix("/api/v4/").split("/")]
            if parts[0] != "projects" or len(parts) < 2:
                return self._reply(404, {"message": "404 Not Found"})
            ident = parts[1]
            project_id = (
                int(ident)
                if ident.isdigit()
                else next((i for i, p in fake.projects.items() if p == ident), None)
            )
            if project_id not in fake.projects:
                return self._reply(404, {"message": "404 Project Not Found"})
            return self._route(method, project_id, parts[2:], query, split.path)

        def _route(
            self, method: str, project_id: int, rest: list[str], query: dict[str, str], path: str
        ) -> None:
            pipelines = fake.pipelines[project_id]
            if not rest:
                return self._reply(200, fake.project_json(project_id))
            if rest[0] == "issues":
                return fake.issues.route(self, method, project_id, rest, query, path)
            if method == "POST" and rest == ["pipeline"]:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                created = fake.add_pipeline(
                    project_id, dt.datetime.now(dt.UTC), "created", ref=body["ref"]
                )
                return self._reply(201, fake.pipeline_json(created))
            if rest == ["pipelines"]:
                chosen = list(pipelines)
                if "updated_after" in query:
                    after = dt.datetime.fromisoformat(query["updated_after"].replace("Z", "+00:00"))
                    chosen = [
                        p
                        for p in chosen
                        if dt.datetime.fromisoformat(
                            fake.pipeline_json(p)["updated_at"].replace("Z", "+00:00")
                        )
                        > after
                    ]
                chosen.sort(key=lambda p: p.id, reverse=query.get("sort", "desc") == "desc")
                return self._page([fake.pipeline_json(p) for p in chosen], query, path)
            if rest[0] == "pipelines" and len(rest) == 3 and rest[2] == "jobs":
                found = next((p for p in pipelines if p.id == int(rest[1])), None)
                if found is None:
                    return self._reply(404, {"message": "404 Not found"})
                jobs = [fake.job_json(found, j) for j in sorted(found.jobs, key=lambda j: j.id)]
                return self._page(jobs, query, path)
            if rest[0] == "pipelines" and len(rest) == 2:
                found = next((p for p in pipelines if p.id == int(rest[1])), None)
                return (
                    self._reply(200, fake.pipeline_json(found))
                    if found
                    else self._reply(404, {"message": "404 Not found"})
                )
            if rest == ["jobs"]:
                if query.get("pagination") == "keyset" and not fake.keyset_jobs:
                    return self._reply(
                        405,
                        {
                            "error": "Keyset pagination is not yet available for this type "
                            "of request"
                        },
                    )
                jobs = sorted(
                    ((p, j) for p in pipelines for j in p.jobs),
                    key=lambda pj: pj[1].id,
                    reverse=True,
                )
                return self._page([fake.job_json(p, j) for p, j in jobs], query, path)
            if rest[0] == "jobs" and len(rest) == 3 and rest[2] == "trace":
                job = next((j for p in pipelines for j in p.jobs if j.id == int(rest[1])), None)
                if job is None:
                    return self._reply(404, {"message": "404 Not found"})
                asked = self.headers.get("Range")
                with fake.lock:
                    trace = bytes(job.trace)
                return self._trace(job, trace, asked)
            return self._reply(404, {"message": "404 Not Found"})

        def _trace(self, job: FakeJob, trace: bytes, asked: str | None) -> None:
            archived = job.status not in ("running", "pending", "created")
            wanted = _RANGE.fullmatch(asked or "")
            status, headers, body = 200, {}, trace
            if fake.trace_ranges == "archived" and archived and wanted:
                first = int(wanted.group(1))
                last = min(int(wanted.group(2) or len(trace) - 1), len(trace) - 1)
                if first >= len(trace):
                    status, headers, body = 416, {"Content-Range": f"bytes */{len(trace)}"}, b""
                else:
                    status, body = 206, trace[first : last + 1]
                    headers = {"Content-Range": f"bytes {first}-{last}/{len(trace)}"}
            with fake.lock:
                fake.trace_requests.append((job.id, asked, status))
            return self._reply(status, body, headers, "text/plain")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler
