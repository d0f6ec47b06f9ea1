"""GitLab webhook payloads (Pipeline Hook, Job Hook) to the records the poller makes.

A Pipeline Hook carries the pipeline (`object_attributes`), its project and its jobs
(`builds`): enough for the same `parse_pipeline` the polling ingestion uses, so a row written
from a webhook is the row the next poll would write. GitLab writes the hook's times as
`2016-08-12 15:23:28 UTC`, not ISO 8601, so they are rewritten before parsing.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from timbel_dagster.records.delivery import ExecutionRecord, PipelineRecord
from timbel_dagster.resources.gitlab.client import SYSTEM
from timbel_dagster.resources.gitlab.parse import parse_pipeline
from timbel_dagster.resources.payload import Fields

PIPELINE_HOOK = "Pipeline Hook"
JOB_HOOK = "Job Hook"
EVENTS = (PIPELINE_HOOK, JOB_HOOK)

_HOOK_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) UTC$")
_TIME_FIELDS = ("created_at", "started_at", "finished_at")


def _iso(value: Any) -> Any:
    """`2016-08-12 15:23:28 UTC` as `2016-08-12T15:23:28+00:00`; anything else unchanged."""
    if isinstance(value, str) and (match := _HOOK_TIME.match(value)):
        return f"{match[1]}T{match[2]}+00:00"
    return value


def _with_iso_times(data: dict[str, Any]) -> dict[str, Any]:
    return data | {k: _iso(data[k]) for k in _TIME_FIELDS if k in data}


def hook_project(data: dict[str, Any]) -> str:
    """The project path (`group/project`) a Pipeline or Job Hook is about."""
    fields = Fields(SYSTEM, "webhook", data)
    if isinstance(data.get("project"), dict):
        return fields.child("project").get("path_with_namespace", str)
    # Job Hooks of older GitLab carry no `project` object; the repository's page is the
    # project's, and its path is the project's path (`project_name` is a display name).
    homepage = fields.child("repository").get("homepage", str)
    return urlsplit(homepage).path.strip("/")


def pipeline_hook(data: dict[str, Any]) -> tuple[PipelineRecord, ExecutionRecord]:
    """The pipeline (project) and execution a Pipeline Hook describes.

    Raises:
        SourceDataError: a field the records need is missing or of the wrong type.
    """
    fields = Fields(SYSTEM, "Pipeline Hook", data)
    project = fields.child("project")
    path = project.get("path_with_namespace", str)
    attributes = _with_iso_times(fields.get("object_attributes", dict))
    # The hook names the pipeline's page `url`; the REST API (which parse_pipeline reads)
    # names it `web_url`.
    attributes.setdefault("web_url", attributes.get("url"))
    builds = [
        Fields(SYSTEM, f"{path} job {build.get('id', '?')}", _with_iso_times(build))
        for build in fields.get("builds", list, default=[])
        if isinstance(build, dict)
    ]
    pipeline = PipelineRecord(
        ci_system="gitlab",
        name=path,
        service=path.rsplit("/", 1)[-1],
        repository=project.get("git_http_url", str, default=None),
        default_branch=project.get("default_branch", str, default=None),
        url=project.get("web_url", str, default=None),
    )
    return pipeline, parse_pipeline(path, attributes, builds)
