"""What the OCI registry client returns: manifests, their descriptors and image tags.

Plain frozen dataclasses, so assets, sensors and tests can build and compare them freely.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Sent as Accept on every manifest request: without it, a registry may answer with the old
# signed schema 1 or refuse a multi-arch index outright.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


@dataclass(frozen=True)
class Platform:
    """The platform of one entry of an image index."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """A content-addressed reference: the config, a layer, or an entry of an index."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True)
class Manifest:
    """One manifest as the registry serves it: an image manifest or an image index."""

    repository: str
    reference: str  # the tag or digest it was asked for
    digest: str  # of the exact bytes served: what `repository@digest` pulls
    media_type: str
    config: Descriptor | None = None  # image manifests only
    layers: tuple[Descriptor, ...] = ()  # image manifests only
    manifests: tuple[Descriptor, ...] = ()  # indexes only: one entry per platform

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def config_digest(self) -> str | None:
        return self.config.digest if self.config else None

    @property
    def size(self) -> int | None:
        """Bytes a pull transfers: config plus compressed layers (None for an index)."""
        if self.config is None:
            return None
        return self.config.size + sum(layer.size for layer in self.layers)

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(str(m.platform) for m in self.manifests if m.platform)


@dataclass(frozen=True)
class Image:
    """One tag of one repository and what it points at.

    For an index, `created`, `size` and `revision` are those of its linux/amd64 image (else
    its first real platform): the index itself has none of them. `revision` is the source
    revision the image config's labels name (`org.opencontainers.image.revision`, else
    label-schema's `org.label-schema.vcs-ref`, else `vcs-ref`): the commit it was built from.
    """

    registry: str  # host[:port], as image references name it
    repository: str
    tag: str
    digest: str
    media_type: str
    created: dt.datetime | None = None
    size: int | None = None
    revision: str | None = None

    @property
    def reference(self) -> str:
        """`registry/repository@digest`: pulls exactly these bytes, whatever the tag does."""
        return f"{self.registry}/{self.repository}@{self.digest}"
