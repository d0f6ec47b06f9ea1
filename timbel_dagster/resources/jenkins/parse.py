"""Jenkins JSON (remote access API and the Pipeline REST API, `wfapi`) to domain records."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from timbel_dagster.records.delivery import ExecutionRecord, StageRecord
from timbel_dagster.resources.jenkins.client import SYSTEM
from timbel_dagster.resources.payload import Fields

# Folders and multibranch projects hold jobs; everything else with builds is a job.
FOLDER_CLASSES = frozenset(
    {
        "com.cloudbees.hudson.plugins.folder.Folder",
        "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject",
        "jenkins.branch.OrganizationFolder",
    }
)
_RESULTS = {
    "SUCCESS": "success",
    "FAILURE": "failed",
    "UNSTABLE": "failed",
    "ABORTED": "aborted",
    "NOT_BUILT": "aborted",
}
_STAGE_STATUSES = {
    "SUCCESS": "success",
    "FAILED": "failed",
    "UNSTABLE": "failed",
    "ABORTED": "aborted",
    "NOT_EXECUTED": "skipped",
    "IN_PROGRESS": "running",
    "PAUSED_PENDING_INPUT": "running",
    "QUEUED": "pending",
}


MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"


@dataclass(frozen=True)
class JenkinsJob:
    full_name: str
    url: str
    kind: str  # the Jenkins class name
    last_build: int | None
    parent_kind: str | None = None
    last_building: bool = False  # the newest build is still running

    @property
    def service(self) -> str:
        """A branch job of a multibranch project belongs to the project; others to themselves."""
        parts = self.full_name.split("/")
        return parts[-2] if self.parent_kind == MULTIBRANCH and len(parts) > 1 else parts[-1]

    @property
    def is_folder(self) -> bool:
        return self.kind in FOLDER_CLASSES


def parse_job(item: Fields, parent_kind: str | None = None) -> JenkinsJob:
    name = item.get("fullName", str, default=None) or item.get("name", str)
    last = item.get("lastBuild", dict, default=None)
    last_fields = Fields(item.system, name, last, "lastBuild") if last else None
    return JenkinsJob(
        full_name=name,
        url=item.get("url", str),
        kind=item.get("_class", str, default=""),
        last_build=last_fields.get("number", int) if last_fields else None,
        parent_kind=parent_kind,
        last_building=last_fields.get("building", bool, default=False) if last_fields else False,
    )


def _action_values(actions: list[Fields]) -> dict[str, Any]:
    """The bits of a build's `actions` list we use: causes, git revision, queue time."""
    found: dict[str, Any] = {}
    for action in actions:
        data = action.data
        if "causes" in data and "triggered_by" not in found:
            for cause in action.children("causes"):
                who = cause.get("userId", str, default=None) or cause.get(
                    "shortDescription", str, default=None
                )
                if who:
                    found["triggered_by"] = who
                    break
        if data.get("lastBuiltRevision"):
            revision = action.child("lastBuiltRevision")
            found["commit_sha"] = revision.get("SHA1", str, default=None)
            branches = revision.children("branch")
            if branches:
                found["branch"] = short_branch(branches[0].get("name", str, default=None))
        if "queuingDurationMillis" in data:
            found["queue_seconds"] = action.get("queuingDurationMillis", int) / 1000
    return found


def short_branch(ref: str | None) -> str | None:
    """`refs/remotes/origin/main` or `origin/main` -> `main`."""
    if ref is None:
        return None
    for prefix in ("refs/remotes/origin/", "refs/heads/", "origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _artifacts(item: Fields, build_url: str | None) -> dict[str, Any] | None:
    """A build's archived artifacts with their download links (`<build>/artifact/<path>`)."""
    files = []
    for artifact in item.children("artifacts", skip_nulls=True):
        path = artifact.get("relativePath", str)
        files.append(
            {
                "name": artifact.get("fileName", str, default=None) or path.rsplit("/", 1)[-1],
                "path": path,
                "url": f"{build_url.rstrip('/')}/artifact/{quote(path)}" if build_url else None,
            }
        )
    return {"files": files} if files else None


def parse_build(job: str, item: Fields) -> ExecutionRecord:
    """One entry of `allBuilds[...]` as an execution (stages are attached separately).

    A result outside the documented five (plugins add their own) is stored as `unknown` with
    the raw value in `error_message`; a build that is no longer building has finished either
    way.
    """
    number = item.get("number", int)
    building = item.get("building", bool, default=False)
    result = item.get("result", str, default=None)
    started = item.millis("timestamp")
    duration_ms = item.get("duration", int, default=0)
    if building:
        status = "running"
    elif result is None:
        status = "pending"
    else:
        status = _RESULTS.get(result, "unknown")
    finished = not building and result is not None
    actions = _action_values(item.children("actions", skip_nulls=True))
    url = item.get("url", str, default=None)
    if status == "failed":
        error = f"build result {result}"
    elif status == "unknown":
        error = f"unknown build result {result!r}"
    else:
        error = None
    return ExecutionRecord(
        pipeline=job,
        external_id=str(number),
        sequence=number,
        status=status,
        triggered_by=actions.get("triggered_by"),
        started_at=started,
        completed_at=started + dt.timedelta(milliseconds=duration_ms)
        if finished and started
        else None,
        duration=duration_ms / 1000 if finished else None,
        commit_sha=actions.get("commit_sha"),
        branch=actions.get("branch"),
        url=url,
        queue_seconds=actions.get("queue_seconds"),
        error_message=error,
        artifacts=_artifacts(item, url),
    )


def _stage_status(stage: Fields) -> tuple[str, str | None]:
    """A wfapi stage's status and error text.

    A stage interrupted by `FlowInterruptedException` comes with `"status": null` and an
    `error` object (`message`, `type`) instead: it is `unknown`, and the error's message (or
    its type when the message is empty) is its error text. A status outside the Pipeline REST
    API's list is `unknown` too, with the raw value kept in the text.
    """
    raw = stage.get("status", str, default=None)
    error = stage.child("error") if stage.data.get("error") is not None else None
    message = None
    if error is not None:
        message = error.get("message", str, default=None) or error.get("type", str, default=None)
    status = _STAGE_STATUSES.get(raw, "unknown") if raw is not None else "unknown"
    notes = []
    if status == "unknown":
        notes.append(f"unknown stage status {raw!r}" if raw is not None else "no stage status")
    if message:
        notes.append(message)
    return status, "; ".join(notes) or None


def parse_stages(job: str, number: int, stages: list[Fields]) -> tuple[StageRecord, ...]:
    """`wfapi` stages as stage rows.

    The Pipeline REST API lists nested stages flat. A stage that runs inside the time span of
    an earlier stage that is still open is a branch of it (a `parallel` block), so that
    earlier stage becomes its `parent_name`.
    """
    records: list[StageRecord] = []
    open_spans: list[tuple[str, int, int]] = []  # (name, start, end) of possible parents
    for position, stage in enumerate(stages):
        status, error = _stage_status(stage)
        start = stage.get("startTimeMillis", int, default=0)
        duration = stage.get("durationMillis", int, default=0)
        end = start + duration
        parent = None
        for name, span_start, span_end in reversed(open_spans):
            if span_start <= start and end <= span_end and (start, end) != (span_start, span_end):
                parent = name
                break
        open_spans.append((stage.get("name", str), start, end))
        records.append(
            StageRecord(
                external_id=str(stage.get("id", (str, int))),
                name=stage.get("name", str),
                position=position,
                status=status,
                started_at=stage.millis("startTimeMillis") if start else None,
                duration=duration / 1000,
                parent_name=parent,
                queue_seconds=stage.get("pauseDurationMillis", int, default=0) / 1000,
                error_message=error,
            )
        )
    return tuple(records)


def with_stages(execution: ExecutionRecord, stages: tuple[StageRecord, ...]) -> ExecutionRecord:
    return dataclasses.replace(execution, stages=stages)


def job_fields(system_obj: str, data: Any) -> Fields:
    return Fields(SYSTEM, system_obj, data)
