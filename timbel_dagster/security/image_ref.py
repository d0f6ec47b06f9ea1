"""Image references and the digest they name, whatever form they take.

`parse_image` reads a reference as `docker pull` does (distribution's reference grammar):
`host[:port]/repo/path:tag`, `repo:tag`, `repo@sha256:...`, `repo:tag@sha256:...` (the digest
wins), Docker Hub short names (`nginx` is `docker.io/library/nginx`), and no tag meaning
`latest`. `resolve_digest` turns a tag into the digest it points at: the warehouse's
`registry_images` first, then the registry itself through a `DigestLookup` the caller passes
in (the CLI and jobs bind the configured `RegistryResource`; this module never talks HTTP).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# (registry host[:port], repository, tag or digest) -> the digest it points at now, or None
# when that registry does not know it (or is not the registry the lookup can ask).
DigestLookup = Callable[[str, str, str], "str | None"]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = (DOCKER_HUB, "index.docker.io", "registry-1.docker.io")
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
        registry = DOCKER_HUB if registry in _HUB_ALIASES else registry
    else:
        registry, path = DOCKER_HUB, rest
    if not _REPOSITORY.fullmatch(path):
        raise bad(f"{path!r} is not a repository name (lower-case path like team/app)")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(f"{registry}/{path}") > 255:
        raise bad("the name is longer than 255 characters")
    return ImageRef(registry, path, tag or (None if at else "latest"), digest or None)


def _same_registry(host: str) -> str:
    """How two names of one registry compare: without case, without https's or http's
    default port, Docker Hub's host names as docker.io (`RegistryResource.find_digest`
    compares the configured registry's host the same way)."""
    host = host.lower()
    for port in (":443", ":80"):
        host = host.removesuffix(port)
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _registry_hosts(registry: str) -> tuple[str, ...]:
    """The lower-cased ways `registry_images` may spell `registry`'s host."""
    plain = _same_registry(registry)
    return _HUB_ALIASES if plain == DOCKER_HUB else (plain, f"{plain}:443", f"{plain}:80")


def known_digest(connection: Connection, ref: ImageRef) -> str | None:
    """The digest `registry_images` last saw `ref`'s tag point at, or None."""
    from sqlalchemy import func, select

    from timbel_dagster.warehouse.models_registry import RegistryImage as R

    if ref.digest or not ref.tag:
        return ref.digest
    return connection.execute(
        select(R.digest)
        .where(func.lower(R.registry).in_(_registry_hosts(ref.registry)))
        .where(R.repository == ref.repository, R.tag == ref.tag)
        .order_by(R.last_seen.desc())
        .limit(1)
    ).scalar()


@dataclass(frozen=True)
class Resolved:
    """What a reference names: its `digest` (None when nothing knows the tag) and where the
    digest came from: `reference`, `registry_images` or `registry`; `raw`: as it was given."""

    ref: ImageRef
    digest: str | None
    via: str | None
    raw: str = ""
    asked: bool = False  # whether a registry lookup was asked about it

    def note(self) -> str | None:
        """One line for people, when a tag was resolved or could not be."""
        if self.via in (None, "reference"):
            if self.via:
                return None
            where = (
                "in neither registry_images nor the registry"
                if self.asked
                else "not in registry_images and no registry is configured to ask (HARBOR_REGISTRY)"
            )
            return f"{self.ref.tagged} is {where}: matched by the name its scans recorded"
        return f"{self.ref.tagged} is {self.ref.name}@{self.digest} (from {self.via})"


def resolve_digest(
    connection: Connection, reference: str | ImageRef, lookup: DigestLookup | None = None
) -> Resolved:
    """The digest `reference` names: its own digest, else its tag's in `registry_images`, else
    what `lookup` (the registry's manifest HEAD) answers; `digest=None` when none knows it.

    Raises:
        ValueError: `reference` is not an image reference.
    """
    ref = parse_image(reference) if isinstance(reference, str) else reference
    raw = reference if isinstance(reference, str) else str(reference)
    if ref.digest:
        return Resolved(ref, ref.digest, "reference", raw)
    digest = known_digest(connection, ref)
    if digest:
        return Resolved(ref, digest, "registry_images", raw)
    if lookup is not None and ref.tag:
        digest = lookup(ref.registry, ref.repository, ref.tag)
        if digest:
            return Resolved(ref, digest, "registry", raw, asked=True)
    return Resolved(ref, None, None, raw, asked=lookup is not None)


def resolve_many(
    connection: Connection, references: Iterable[str], lookup: DigestLookup | None = None
) -> dict[str, Resolved | None]:
    """`resolve_digest` of each distinct reference, reading `registry_images` once for all of
    them and asking `lookup` only for tags it does not know; None for a string that is not
    an image reference (deployments record whatever their source said)."""
    from sqlalchemy import select

    from timbel_dagster.warehouse.models_registry import RegistryImage as R

    parsed: dict[str, ImageRef | None] = {}
    for reference in dict.fromkeys(references):
        try:
            parsed[reference] = parse_image(reference)
        except ValueError:
            parsed[reference] = None
    tagged = [r for r in parsed.values() if r is not None and not r.digest]
    known: dict[tuple[str, str, str], str] = {}
    repositories = sorted({r.repository for r in tagged})
    for start in range(0, len(repositories), 500):  # bounded IN lists
        rows = connection.execute(
            select(R.registry, R.repository, R.tag, R.digest)
            .where(R.repository.in_(repositories[start : start + 500]))
            .order_by(R.last_seen)
        )
        for registry, repository, tag, digest in rows:
            known[(_same_registry(registry), repository, tag)] = digest  # newest listing wins
    found: dict[str, Resolved | None] = {}
    asked: dict[tuple[str, str, str], str | None] = {}
    for reference, ref in parsed.items():
        if ref is None:
            found[reference] = None
        elif ref.digest:
            found[reference] = Resolved(ref, ref.digest, "reference", reference)
        elif (held := (_same_registry(ref.registry), ref.repository, ref.tag or "")) in known:
            found[reference] = Resolved(ref, known[held], "registry_images", reference)
        else:
            key = (ref.registry, ref.repository, ref.tag or "")
            if lookup is not None and key not in asked:
                asked[key] = lookup(*key)
            digest = asked.get(key)
            found[reference] = Resolved(
                ref, digest, "registry" if digest else None, reference, lookup is not None
            )
    return found
