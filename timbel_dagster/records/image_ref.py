"""Image references, whatever form they take, parsed into one record.

`parse_image` reads a reference as `docker pull` does (distribution's reference grammar):
`host[:port]/repo/path:tag`, `repo:tag`, `repo@sha256:...`, `repo:tag@sha256:...` (the digest
wins), Docker Hub short names (`nginx` is `docker.io/library/nginx`), and no tag meaning
`latest`. The Trivy client checks what it is given with it; the security domain resolves the
digest a reference names (security/image_ref.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
HUB_ALIASES = (DOCKER_HUB, "index.docker.io", "registry-1.docker.io")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# distribution/reference regexp.go: domainComponent never starts or ends with '-'; an IPv6
# address is bracketed; then an optional port.
_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# go-digest's registered algorithms (lower-case hex of their exact length).
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}")
# normalize.go: a bare 64-hex string is an image ID, not a repository name.
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference; `tag` is None only when a digest names the image."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """`registry/repository`, what its scans and deployments name it by."""
        return f"{self.registry}/{self.repository}"

    @property
    def tagged(self) -> str | None:
        """`registry/repository:tag`, or None for a reference by digest alone."""
        return f"{self.name}:{self.tag}" if self.tag else None

    def __str__(self) -> str:
        return (
            self.name
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


def _is_host(component: str) -> bool:
    # distribution/reference: the first component is a host if it has a dot or a port, or is
    # localhost, or has an upper-case letter (repository paths never do).
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or (component != component.lower())
    )


def parse_image(reference: str) -> ImageRef:
    """The parts of `reference`, normalised as `docker pull` reads it.

    Raises:
        ValueError: not an image reference; the message names it.
    """
    text = reference.strip()

    def bad(why: str) -> ValueError:
        return ValueError(f"{reference!r} is not an image reference ({why})")

    if _IMAGE_ID.fullmatch(text):
        raise bad("a 64-hex string is an image ID, not a repository name")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise bad(f"{digest!r} is not a sha256:, sha384: or sha512: digest")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise bad(f"{tag!r} is not a tag")
    first, sep, path = rest.partition("/")
    if sep and _is_host(first):
        if not _HOST.fullmatch(first):
            raise bad(f"{first!r} is not a registry host")
        registry = first.lower()  # host names compare without case
        registry = DOCKER_HUB if registry in HUB_ALIASES else registry
    else:
        registry, path = DOCKER_HUB, rest
    if not _REPOSITORY.fullmatch(path):
        raise bad(f"{path!r} is not a repository name (lower-case path like team/app)")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(f"{registry}/{path}") > 255:
        raise bad("the name is longer than 255 characters")
    return ImageRef(registry, path, tag or (None if at else "latest"), digest or None)
