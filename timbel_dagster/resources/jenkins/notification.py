"""The Jenkins Notification plugin's JSON (`Format: JSON`, `Protocol: HTTP`) as a record.

The plugin posts one object per phase of a build (QUEUED, STARTED, COMPLETED, FINALIZED):
`{"name", "url": "job/<folder>/job/<name>/", "build": {"number", "phase", "status",
"full_url", "queue_id", "timestamp", "duration", "scm": {...}, ...}}`. `name` is the job's
short name; the job's full name (what the warehouse calls the pipeline) is read from `url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timbel_dagster.resources.jenkins.client import SYSTEM
from timbel_dagster.resources.payload import Fields

PHASES = ("QUEUED", "STARTED", "COMPLETED", "FINALIZED")


@dataclass(frozen=True)
class BuildNotice:
    job: str  # full name: folder/name
    number: int
    phase: str  # one of PHASES, or what a newer plugin sends
    status: str | None  # SUCCESS, FAILURE, ... once completed

    @property
    def key(self) -> str:
        """One delivery per build and phase: the plugin retries with the same three."""
        return f"{self.job}#{self.number}:{self.phase}"


def full_name(url: str | None, name: str) -> str:
    """`job/a/job/b/` -> `a/b`; the short name when the URL is not a job path."""
    parts = [p for p in (url or "").strip("/").split("/") if p]
    if len(parts) >= 2 and len(parts) % 2 == 0 and all(p == "job" for p in parts[::2]):
        return "/".join(parts[1::2])
    return name


def parse_notification(data: Any) -> BuildNotice:
    """Raises `SourceDataError` naming the missing or mistyped field."""
    fields = Fields(SYSTEM, "notification", data)
    name = fields.get("name", str)
    build = fields.child("build")
    return BuildNotice(
        job=full_name(fields.get("url", str, default=None), name),
        number=build.get("number", int),
        phase=build.get("phase", str),
        status=build.get("status", str, default=None),
    )
