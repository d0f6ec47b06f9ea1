"""A loopback Jenkins that enforces the rules of the real remote access API.

Answers are built from the recorded shapes in `tests/fixtures/jenkins/` (see its README).
It counts requests, can be told to fail the next requests (status codes, HTML pages, empty or
malformed bodies), and its builds' logs can grow while a client reads them.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import socket
import threading
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.loopback import LoopbackServer
from tests.fakes.tree import apply_tree, parse_tree

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jenkins"
BUILD_TEMPLATE = json.loads((FIXTURES / "build.json").read_text())
DESCRIBE_TEMPLATE = json.loads((FIXTURES / "wfapi_describe.json").read_text())
# a run aborted in `Build`: that stage answers `"status": null` and an `error` object
INTERRUPTED_TEMPLATE = json.loads((FIXTURES / "wfapi_describe_interrupted.json").read_text())
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"
PIPELINE = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
STAGES = ("Checkout", "Build", "Tests", "unit-tests", "integration-tests", "Publish")
# Jenkins.checkGoodName: characters an item name may not contain.
JENKINS_UNSAFE = set("?*/\\%!@#$^&|<>[]:;")
QUOTED = "\u2018{}\u2019"  # Jenkins quotes names in messages with typographic quotes
DEFAULT_CONFIG = (
    "<?xml version='1.1' encoding='UTF-8'?>\n<flow-definition plugin=\"workflow-job\"/>\n"
)


@dataclass
class FakeBuild:
    number: int
    timestamp: int
    duration: int = 400_000
    result: str | None = "SUCCESS"
    building: bool = False
    user: str = "minji.kim"
    sha: str = "9f3b2c1d4e5f60718293a4b5c6d7e8f901234567"
    log: bytearray = field(default_factory=bytearray)
    finish_after_reads: int | None = None  # stop building after this many log reads
    interrupted: bool = False  # aborted mid-run: wfapi from `wfapi_describe_interrupted.json`
    artifacts: list[dict[str, Any]] | None = None  # None: the fixture's
    raw: dict[str, Any] = field(default_factory=dict)  # fields to overwrite in its JSON


@dataclass
class Fault:
    status: int = 503
    body: bytes = b""
    content_type: str = "text/plain"
    path_contains: str = ""


class FakeJenkins(LoopbackServer):
    url_suffix = "/"

    def __init__(
        self, user: str = "timbel", token: str = "api-token-123", require_crumb: bool = False
    ) -> None:
        self.user, self.token, self.require_crumb = user, token, require_crumb
        self.jobs: dict[str, list[FakeBuild]] = {}  # oldest first
        self.folders: set[str] = set()
        self.queue: dict[int, tuple[str, dict[str, str]]] = {}
        self.faults: deque[Fault] = deque()
        self.cut_log_after: deque[int] = deque()  # drop the connection after N log bytes
        self.start_queued_builds = False
        self.requests: list[tuple[str, str, str]] = []
        self.configs: dict[str, str] = {}  # job full name -> its config.xml
        self.lock = threading.Lock()
        super().__init__()

    # -- state --------------------------------------------------------------------------------
    def add_job(
        self,
        full_name: str,
        builds: int = 0,
        first_timestamp: int = 1_761_000_000_000,
        every_ms: int = 600_000,
    ) -> None:
        parts = full_name.split("/")
        for depth in range(1, len(parts)):
            self.folders.add("/".join(parts[:depth]))
        self.jobs[full_name] = [
            FakeBuild(
                number=n,
                timestamp=first_timestamp + (n - 1) * every_ms,
                result="FAILURE" if n % 7 == 0 else "SUCCESS",
            )
            for n in range(1, builds + 1)
        ]

    def add_build(self, job: str, **values: Any) -> FakeBuild:
        builds = self.jobs[job]
        number = builds[-1].number + 1 if builds else 1
        stamp = builds[-1].timestamp + 600_000 if builds else 1_761_000_000_000
        build = FakeBuild(number=number, timestamp=stamp, **values)
        builds.append(build)
        return build

    def build(self, job: str, number: int) -> FakeBuild | None:
        return next((b for b in self.jobs.get(job, []) if b.number == number), None)

    def fail_next(self, count: int = 1, **fault: Any) -> None:
        self.faults.extend(Fault(**fault) for _ in range(count))

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    # -- payloads ---------------------------------------------------------------------------
    def job_url(self, full_name: str) -> str:
        return self.url + "".join(f"job/{p}/" for p in full_name.split("/"))

    def build_json(self, job: str, b: FakeBuild) -> dict[str, Any]:
        data = copy.deepcopy(BUILD_TEMPLATE)
        data.update(
            number=b.number,
            id=str(b.number),
            result=None if b.building else b.result,
            building=b.building,
            timestamp=b.timestamp,
            duration=0 if b.building else b.duration,
            url=f"{self.job_url(job)}{b.number}/",
            displayName=f"#{b.number}",
        )
        data["actions"][0]["causes"][0]["userId"] = b.user
        revision = data["actions"][2]["lastBuiltRevision"]
        revision["SHA1"] = revision["branch"][0]["SHA1"] = b.sha
        if b.artifacts is not None:
            data["artifacts"] = copy.deepcopy(b.artifacts)
        data.update(copy.deepcopy(b.raw))
        return data

    def describe_json(self, job: str, b: FakeBuild) -> dict[str, Any]:
        data = copy.deepcopy(INTERRUPTED_TEMPLATE if b.interrupted else DESCRIBE_TEMPLATE)
        status = "IN_PROGRESS" if b.building else ("FAILED" if b.result == "FAILURE" else "SUCCESS")
        status = "ABORTED" if b.interrupted else status
        offset = b.timestamp - 1_761_900_000_000
        data.update(
            id=str(b.number),
            name=f"#{b.number}",
            status=status,
            startTimeMillis=b.timestamp + 2113,
            durationMillis=b.duration,
        )
        for stage in data["stages"]:
            stage["startTimeMillis"] += offset
            if status == "FAILED" and stage["name"] == "integration-tests":
                stage["status"] = "FAILED"
        return data

    def job_json(self, full_name: str) -> dict[str, Any]:
        name = full_name.rsplit("/", 1)[-1]
        if full_name in self.folders or full_name == "":
            prefix = f"{full_name}/" if full_name else ""
            children = sorted(
                {
                    prefix + rest.split("/", 1)[0]
                    for rest in (
                        n[len(prefix) :]
                        for n in [*self.jobs, *self.folders]
                        if n.startswith(prefix) and n != full_name
                    )
                }
            )
            return {
                "_class": FOLDER if full_name else "hudson.model.Hudson",
                "name": name,
                "fullName": full_name,
                "url": self.job_url(full_name) if full_name else self.url,
                "jobs": [self.job_json(child) for child in children],
            }
        builds = self.jobs[full_name]

        def window(bounds: tuple[int, int | None] | None, cap: int | None = None) -> list:
            newest_first = builds[::-1]
            low, high = bounds or (0, None)
            if cap is not None:
                high = min(high if high is not None else cap, cap)
            return [self.build_json(full_name, b) for b in newest_first[low:high]]

        last = builds[-1] if builds else None
        return {
            "_class": PIPELINE,
            "name": name,
            "fullName": full_name,
            "url": self.job_url(full_name),
            "builds": lambda bounds: window(bounds, cap=100),
            "allBuilds": window,
            "lastBuild": {
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                "number": last.number,
                "building": last.building,
                "url": f"{self.job_url(full_name)}{last.number}/",
            }
            if last
            else None,
        }


def _handler(fake: FakeJenkins) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _reply(
            self,
            status: int,
            body: bytes = b"",
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: Any, query: dict[str, list[str]]) -> None:
            if "tree" in query:
                data = apply_tree(data, parse_tree(query["tree"][0]))
            else:
                shown = [
                    k for k in data if k not in ("_class", "allBuilds")
                ]  # allBuilds: on request
                data = apply_tree(data, parse_tree(",".join(shown)))
            self._reply(200, json.dumps(data).encode())

        def _authorised(self) -> bool:
            expected = base64.b64encode(f"{fake.user}:{fake.token}".encode()).decode()
            return self.headers.get("Authorization") == f"Basic {expected}"

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            query = parse_qs(split.query)
            with fake.lock:
                fake.requests.append((method, split.path, split.query))
                fault = (
                    fake.faults[0]
                    if fake.faults and fake.faults[0].path_contains in split.path
                    else None
                )
                if fault:
                    fake.faults.popleft()
            if fault:
                return self._reply(fault.status, fault.body, fault.content_type)
            if not self._authorised():
                return self._reply(401, b"<html><title>Unauthorized</title></html>", "text/html")
            parts = [unquote(p) for p in split.path.strip("/").split("/") if p]
            names = []
            while len(parts) >= 2 and parts[0] == "job":
                names.append(parts[1])
                parts = parts[2:]
            job = "/".join(names)
            if job and job not in fake.jobs and job not in fake.folders:
                return self._reply(404, b"<html><title>Not Found</title></html>", "text/html")
            return self._route(method, job, parts, query)

        def _route(self, method: str, job: str, rest: list[str], query: dict) -> None:
            if method == "POST":
                return self._post(job, rest, query)
            if rest == ["api", "json"]:
                return self._json(fake.job_json(job), query)
            if rest == ["config.xml"] and job in fake.jobs:
                body = fake.configs.get(job, DEFAULT_CONFIG)
                return self._reply(200, body.encode(), "application/xml")
            if rest == ["crumbIssuer", "api", "json"]:
                return self._reply(
                    200,
                    json.dumps({"crumb": "c0ffee", "crumbRequestField": "Jenkins-Crumb"}).encode(),
                )
            if rest[:2] == ["queue", "item"]:
                item = int(rest[2])
                queued = fake.queue.get(item)
                if queued is None:
                    return self._reply(404)
                target, number = queued[0], queued[1].get("_number")
                body = {"_class": "hudson.model.Queue$LeftItem", "id": item, "cancelled": False}
                if number:
                    body["executable"] = {
                        "number": int(number),
                        "url": f"{fake.job_url(target)}{number}/",
                    }
                else:
                    body["why"] = "Waiting for next available executor"
                return self._reply(200, json.dumps(body).encode())
            if rest == ["wfapi", "runs"]:
                runs, since = [], query.get("since", [None])[0]
                for b in fake.jobs[job][::-1]:
                    runs.append(fake.describe_json(job, b))
                    if (since and runs[-1]["name"] == since) or len(runs) > 10:
                        break
                return self._reply(200, json.dumps(runs).encode())
            if rest and rest[0].isdigit():
                build = fake.build(job, int(rest[0]))
                if build is None:
                    return self._reply(404, b"<html><title>Not Found</title></html>", "text/html")
                if rest[1:] == ["api", "json"]:
                    return self._json(fake.build_json(job, build), query)
                if rest[1:] == ["wfapi", "describe"]:
                    return self._reply(200, json.dumps(fake.describe_json(job, build)).encode())
                if rest[1:] == ["logText", "progressiveText"]:
                    start = int(query.get("start", ["0"])[0])
                    with fake.lock:
                        if build.finish_after_reads is not None:
                            build.finish_after_reads -= 1
                            if build.finish_after_reads <= 0:
                                build.building = False
                                build.result = build.result or "SUCCESS"
                        chunk, size, more = bytes(build.log[start:]), len(build.log), build.building
                    headers = {"X-Text-Size": str(max(size, start))}
                    if more:
                        headers["X-More-Data"] = "true"
                    with fake.lock:
                        cut = fake.cut_log_after.popleft() if fake.cut_log_after else None
                    if cut is not None and cut < len(chunk):
                        return self._cut(chunk, cut, headers)
                    return self._reply(200, chunk, "text/plain;charset=UTF-8", headers)
            return self._reply(404, b"<html><title>Not Found</title></html>", "text/html")

        def _cut(self, body: bytes, after: int, headers: dict[str, str]) -> None:
            """Promise the whole body, send part of it, and drop the connection."""
            self.send_response(200)
            self.send_header("Content-Type", "text/plain;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body[:after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _post(self, job: str, rest: list[str], query: dict) -> None:
            if fake.require_crumb and self.headers.get("Jenkins-Crumb") != "c0ffee":
                return self._reply(403, b"No valid crumb was included in the request", "text/html")
            if rest == ["createItem"]:
                return self._create_item(job, query)
            if rest == ["config.xml"] and job in fake.jobs:
                return self._update_config(job)
            if rest not in (["build"], ["buildWithParameters"]):
                return self._reply(405)
            # Jenkins reads parameters from the query and from a form body (`curl --data`).
            length = int(self.headers.get("Content-Length") or 0)
            form = self.rfile.read(length).decode() if length else ""
            if not (self.headers.get("Content-Type") or "").startswith(
                "application/x-www-form-urlencoded"
            ):
                form = ""
            with fake.lock:
                item = 1000 + len(fake.queue)
                parameters = {k: v[0] for k, v in {**query, **parse_qs(form)}.items()}
                if fake.start_queued_builds:  # an executor is free: the build starts at once
                    build = fake.add_build(job, building=True, result=None, finish_after_reads=2)
                    build.log += f"Started with {parameters}\n".encode()
                    parameters["_number"] = str(build.number)
                fake.queue[item] = (job, parameters)
            return self._reply(201, b"", headers={"Location": f"{fake.url}queue/item/{item}/"})

        def _xml_body(self) -> tuple[str | None, str]:
            """The posted config.xml, or None and why Jenkins would refuse it."""
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = self.headers.get("Content-Type") or ""
            if not content_type:
                return None, "No Content-Type header set"
            if not content_type.startswith(("application/xml", "text/xml")):
                return None, "No mode given"
            return body.decode("utf-8"), ""

        def _failure(self, status: int, message: str) -> None:
            page = f"<html><body><h1>Error</h1><p>{html.escape(message)}</p></body></html>"
            self._reply(status, page.encode(), "text/html;charset=utf-8")

        def _create_item(self, folder: str, query: dict) -> None:
            """POST createItem?name=: a new job from config.xml (Jenkins' rules: 400 when the
            name is missing, unsafe or taken; only folders hold items)."""
            if folder and folder not in fake.folders:
                return self._reply(404, b"<html><title>Not Found</title></html>", "text/html")
            name = query.get("name", [""])[0].strip()
            config, refused = self._xml_body()
            if not name:
                return self._failure(400, "Query parameter 'name' is required")
            unsafe = next((c for c in name if c in JENKINS_UNSAFE), None)
            if unsafe:
                return self._failure(400, f"{QUOTED.format(unsafe)} is an unsafe character")
            full_name = f"{folder}/{name}" if folder else name
            with fake.lock:
                if full_name in fake.jobs or full_name in fake.folders:
                    return self._failure(
                        400, f"A job already exists with the name {QUOTED.format(name)}"
                    )
            if config is None:
                return self._failure(400, refused)
            try:
                ET.fromstring(config.encode("utf-8"))
            except ET.ParseError as error:
                return self._failure(500, f"Failed to load the job configuration: {error}")
            with fake.lock:
                fake.jobs[full_name] = []
                fake.configs[full_name] = config
            return self._reply(200, b"", "text/html")

        def _update_config(self, job: str) -> None:
            """POST job/<name>/config.xml: replace the job's configuration."""
            config, refused = self._xml_body()
            if config is None:
                return self._failure(400, refused)
            try:
                ET.fromstring(config.encode("utf-8"))
            except ET.ParseError as error:
                return self._failure(500, f"Failed to load the job configuration: {error}")
            with fake.lock:
                fake.configs[job] = config
            return self._reply(200, b"", "text/html")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
