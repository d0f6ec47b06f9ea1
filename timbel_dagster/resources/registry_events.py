"""The distribution registry's notification envelope as records: the manifests pushed.

The registry posts `{"events": [...]}` (`application/vnd.docker.distribution.events.v1+json`)
to each endpoint of `notifications.endpoints` in its config.yml. Each event has an `id`, an
`action` (push, pull, delete, mount) and a `target` (mediaType, digest, repository, tag,
url). A push of a layer is an event too; only manifest pushes name an image, so only those
are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timbel_dagster.resources.payload import Fields
from timbel_dagster.resources.registry_http import SYSTEM
from timbel_dagster.resources.registry_records import IMAGE_TYPES, INDEX_TYPES

MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES


@dataclass(frozen=True)
class Push:
    event_id: str
    repository: str
    digest: str
    media_type: str
    tag: str | None
    event: dict[str, Any]

    @property
    def subject(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{self.digest}"


def manifest_pushes(envelope: Any) -> list[Push]:
    """The envelope's manifest pushes, in order (other events are left out).

    Raises:
        SourceDataError: the envelope or an event lacks a field this needs.
    """
    pushes = []
    for event in Fields(SYSTEM, "notification", envelope).children("events"):
        if event.get("action", str, default=None) != "push":
            continue
        target = event.child("target")
        media_type = target.get("mediaType", str, default="")
        if media_type not in MANIFEST_TYPES:
            continue
        pushes.append(
            Push(
                event_id=event.get("id", str),
                repository=target.get("repository", str),
                digest=target.get("digest", str),
                media_type=media_type,
                tag=target.get("tag", str, default=None) or None,
                event=event.data,
            )
        )
    return pushes
