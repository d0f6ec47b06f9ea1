"""The sample organisation's container registry, behind the same interface as the real one.

Its images are the ones the sample builds pushed: every successful build publishes
`registry.sample.invalid/<team>/<service>:<short sha>` (the image its deployments name).
Nothing is pulled or stored, so the parts a registry would compute are derived instead:

- digest: `sha256:` + the SHA-256 of the UTF-8 image reference `host/team/service:tag`, so
  the same build always has the same digest and two builds never share one;
- created: when the build that pushed it completed;
- size: a stable figure drawn from the digest.

Only the newest `tags_per_repository` tags of each repository are listed (what a retention
policy would keep), so the demo scans a few dozen images, not the thousand builds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from timbel_dagster.resources.registry_records import OCI_MANIFEST, Image
from timbel_dagster.resources.sample.organisation import SAMPLE_DOMAIN, SAMPLE_SOURCE

if TYPE_CHECKING:
    from timbel_dagster.resources.sample.source import SampleSource

HOST = f"registry.{SAMPLE_DOMAIN}"
TAGS_PER_REPOSITORY = 5
_MIB = 1024 * 1024


def sample_digest(reference: str) -> str:
    """The digest the sample registry gives image `reference` (`host/repository:tag`):
    `sha256:` and the hex SHA-256 of the reference's UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


@dataclass(frozen=True)
class SampleImage:
    """One image a sample build pushed, with where it stands in its repository."""

    image: Image
    service: str
    rank: int  # 0 for the repository's newest build, 1 for the one before, ...

    @property
    def tag_reference(self) -> str:
        return f"{self.image.registry}/{self.image.repository}:{self.image.tag}"


class SampleRegistry:
    """The images of the sample organisation (see the module doc).

    Args:
        source: the sample organisation whose builds pushed the images.
        tags_per_repository: how many of each repository's newest tags `images` lists.
    """

    name = SAMPLE_SOURCE
    host = HOST

    def __init__(self, source: SampleSource, tags_per_repository: int = TAGS_PER_REPOSITORY):
        if tags_per_repository < 1:
            raise ValueError(
                f"sample registry: tags_per_repository must be at least 1, not "
                f"{tags_per_repository}"
            )
        self.source, self.tags_per_repository = source, tags_per_repository

    def configured(self) -> bool:
        """Always: the sample needs no server."""
        return True

    @cached_property
    def _builds(self) -> dict[str, SampleImage]:
        """Every image any sample build pushed, by digest, newest first per repository."""
        pushed: dict[str, list[Image]] = {}
        for execution in self.source.history.executions:
            reference = (execution.artifacts or {}).get("image")
            if not reference or execution.completed_at is None:
                continue
            repository, _, tag = str(reference).rpartition(":")
            digest = sample_digest(f"{HOST}/{repository}:{tag}")
            size = (40 + int(digest[7:15], 16) % 120) * _MIB + int(digest[15:19], 16)
            # As a real build labels it (org.opencontainers.image.revision): its commit.
            image = Image(
                HOST,
                repository,
                tag,
                digest,
                OCI_MANIFEST,
                execution.completed_at,
                size,
                execution.commit_sha,
            )
            pushed.setdefault(repository, []).append(image)
        found: dict[str, SampleImage] = {}
        for repository, images in sorted(pushed.items()):
            newest_first = sorted(images, key=lambda i: (i.created, i.tag), reverse=True)
            service = repository.rpartition("/")[2]
            for rank, image in enumerate(newest_first):
                # A tag pushed twice (a rebuilt commit) keeps its newest build.
                found.setdefault(image.digest, SampleImage(image, service, rank))
        return found

    def images(self, details: bool = True) -> Iterator[Image]:
        """The newest `tags_per_repository` tags of every repository, in name order.

        `details` is accepted for the real registry's signature; the sample always knows
        the build time and size, so both listings are the same.
        """
        listed = [b.image for b in self._builds.values() if b.rank < self.tags_per_repository]
        return iter(sorted(listed, key=lambda i: (i.repository, i.tag)))

    def lookup(self, reference: str) -> SampleImage:
        """The sample image a reference names: `host/repository@sha256:...` or
        `host/repository:tag`, of any sample build (listed or not).

        Raises:
            LookupError: no sample build pushed it.
        """
        name, at, digest = reference.partition("@")
        if not at:
            repository_ref, _, tag = reference.rpartition(":")
            if "/" in tag or not repository_ref:  # a colon of host:port, not a tag
                raise LookupError(f"sample registry: {reference!r} names no tag or digest")
            digest, name = sample_digest(reference), repository_ref
        found = self._builds.get(digest)
        if found is None or name != f"{found.image.registry}/{found.image.repository}":
            raise LookupError(
                f"sample registry: no sample build pushed {reference!r}; the sample images "
                f"are {HOST}/<team>/<service>:<short sha> and their digests"
            )
        return found
