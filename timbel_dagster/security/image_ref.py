"""The digest an image reference names, whatever form the reference takes.

References are parsed into `ImageRef` by `parse_image` (records/image_ref.py; import them
from there). `resolve_digest` turns a tag into the digest it points at: the warehouse's
`registry_images` first, then the registry itself through a `DigestLookup` the caller passes
in (the CLI and jobs bind the configured `RegistryResource`; this module never talks HTTP).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timbel_dagster.records.image_ref import DOCKER_HUB, HUB_ALIASES, ImageRef, parse_image

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["DigestLookup", "Resolved", "known_digest", "resolve_digest", "resolve_many"]

# (registry host[:port], repository, tag or digest) -> the digest it points at now, or None
# when that registry does not know it (or is not the registry the lookup can ask).
DigestLookup = Callable[[str, str, str], "str | None"]


def _same_registry(host: str) -> str:
    """How two names of one registry compare: without case, without https's or http's
    default port, Docker Hub's host names as docker.io (`RegistryResource.find_digest`
    compares the configured registry's host the same way)."""
    host = host.lower()
    for port in (":443", ":80"):
        host = host.removesuffix(port)
    return DOCKER_HUB if host in HUB_ALIASES else host


def _registry_hosts(registry: str) -> tuple[str, ...]:
    """The lower-cased ways `registry_images` may spell `registry`'s host."""
    plain = _same_registry(registry)
    return HUB_ALIASES if plain == DOCKER_HUB else (plain, f"{plain}:443", f"{plain}:80")


def known_digest(connection: Connection, ref: ImageRef) -> str | None:
    """The digest `registry_images` last saw `ref`'s tag point at, or None."""
    from sqlalchemy import func, select

    # lazy: warehouse.schema.registry loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.registry import RegistryImage as R

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

    # lazy: warehouse.schema.registry loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.registry import RegistryImage as R

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
