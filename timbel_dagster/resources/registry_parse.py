"""Parsing what an OCI registry answers: names, manifests, indexes, config times and labels.

Plain functions: tests call them on recorded or hand-written payloads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence

from timbel_dagster.resources.errors import SourceDataError
from timbel_dagster.resources.payload import Fields, parse_json
from timbel_dagster.resources.registry_http import SYSTEM
from timbel_dagster.resources.registry_records import (
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
)

# The distribution spec's grammar; checking it keeps names from escaping the URL path.
_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def check_repository(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a repository name (lower-case path like team/app)")
    return name


def check_reference(reference: str) -> str:
    if not (_TAG.fullmatch(reference) or _DIGEST.fullmatch(reference)):
        raise ValueError(f"{reference!r} is neither a tag nor a digest")
    return reference


def sha256_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _descriptor(fields: Fields) -> Descriptor:
    platform = None
    if fields.get("platform", dict, default=None) is not None:
        p = fields.child("platform")
        platform = Platform(
            p.get("os", str), p.get("architecture", str), p.get("variant", str, default=None)
        )
    return Descriptor(
        fields.get("mediaType", str, default=""),
        fields.get("digest", str),
        fields.get("size", int),
        platform,
    )


def pick_platform(entries: Sequence[Descriptor]) -> Descriptor | None:
    """The index entry that stands for the image: linux/amd64, else the first entry with a
    real platform (buildx adds attestations as `unknown/unknown`), else the first."""
    real = [e for e in entries if e.platform and e.platform.os != "unknown"]
    amd64 = [e for e in real if (e.platform.os, e.platform.architecture) == ("linux", "amd64")]  # type: ignore[union-attr]
    return (amd64 or real or list(entries) or [None])[0]


def parse_created(value: object, obj: str) -> dt.datetime | None:
    """An image config's `created` (RFC 3339, nanoseconds allowed); None when absent or the
    zero time Go writes for "unknown"."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SourceDataError(SYSTEM, obj, f"expected a time, got {value!r:.40}", field="created")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SourceDataError(SYSTEM, obj, f"not a time: {value!r:.40}", field="created") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return None if moment.year <= 1 else moment.astimezone(dt.UTC)


# Where images say which commit they were built from, most specific first: the OCI
# image-spec annotation as a label (docker/metadata-action sets it; `docker build --label`,
# Jib's `container.labels` and Paketo's `BP_OCI_REVISION` when asked), then
# label-schema.org's, then the bare name older Dockerfiles use.
REVISION_LABELS = ("org.opencontainers.image.revision", "org.label-schema.vcs-ref", "vcs-ref")
_REVISION_MAX = 128  # registry_images.revision


def parse_revision(config: object) -> str | None:
    """The source revision an image config's labels name (`config.Labels`), or None.

    Liberal: a config without labels, labels that are not an object, and values that are
    not a non-empty string of at most 128 characters are simply no revision.
    """
    inner = config.get("config") if isinstance(config, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    if not isinstance(labels, dict):
        return None
    for name in REVISION_LABELS:
        value = labels.get(name)
        if isinstance(value, str) and 0 < len(value.strip()) <= _REVISION_MAX:
            return value.strip()
    return None


def parse_manifest(
    repository: str,
    reference: str,
    body: bytes,
    content_type: str,
    digest_header: str | None,
    obj: str,
) -> Manifest:
    """A manifest or index from its bytes; its digest is the header's (checked against the
    bytes, as is a digest reference) or the bytes' sha256."""
    computed = sha256_digest(body)
    for claimed in (digest_header, reference):
        if claimed and claimed.startswith("sha256:") and claimed != computed:
            raise SourceDataError(SYSTEM, obj, f"manifest bytes hash to {computed}, not {claimed}")
    content_type = content_type.split(";")[0].strip()
    data = Fields(SYSTEM, obj, parse_json(SYSTEM, obj, body, content_type))
    if data.get("schemaVersion", int, default=2) == 1:
        raise SourceDataError(SYSTEM, obj, "Docker schema 1 manifests are not supported")
    media_type = data.get("mediaType", str, default=None) or content_type
    digest = digest_header or computed
    if media_type in INDEX_TYPES or ("manifests" in data.data and "config" not in data.data):
        entries = tuple(_descriptor(f) for f in data.children("manifests"))
        if media_type not in INDEX_TYPES:
            media_type = OCI_INDEX
        return Manifest(repository, reference, digest, media_type, manifests=entries)
    if "config" not in data.data:
        raise SourceDataError(SYSTEM, obj, f"unsupported manifest ({media_type})", field="config")
    return Manifest(
        repository,
        reference,
        digest,
        media_type if media_type.startswith("application/vnd.") else OCI_MANIFEST,
        config=_descriptor(data.child("config")),
        layers=tuple(_descriptor(f) for f in data.children("layers")),
    )
