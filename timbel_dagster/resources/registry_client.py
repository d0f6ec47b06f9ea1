"""The OCI distribution (v2) API calls Timbel makes, in as few requests as it allows.

What is read, and how many requests it costs:
- repositories: `/v2/_catalog?n=`, page after page along `Link: <...>; rel="next"`; when every
  configured repository name is literal (no `*?[`), the catalog is not read at all (Harbor
  refuses it to non-admins);
- tags: `/v2/<name>/tags/list?n=`, paged the same way;
- per tag, its manifest (one GET, sent with an Accept for OCI and Docker manifests and
  indexes) and the image config's `created` and revision label (one blob GET, cached per
  config digest); an index costs one more manifest, its linux/amd64 image's;
- the sensor's cheap listing (`details=False`) is one HEAD per tag.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from urllib.parse import urljoin

from timbel_dagster.resources.errors import SourceDataError, SourceNotFoundError
from timbel_dagster.resources.payload import Fields, parse_json
from timbel_dagster.resources.registry_http import SYSTEM, RegistryHTTP
from timbel_dagster.resources.registry_parse import (
    check_reference,
    check_repository,
    parse_created,
    parse_manifest,
    parse_revision,
    pick_platform,
    sha256_digest,
)
from timbel_dagster.resources.registry_records import MANIFEST_ACCEPT, Image, Manifest

log = logging.getLogger(__name__)

_Details = tuple[dt.datetime | None, int | None, str | None]  # created, size, revision


class RegistryClient:
    """What Timbel reads from one registry."""

    def __init__(
        self, http: RegistryHTTP, page_size: int = 100, repositories: Sequence[str] = ()
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.http, self.page_size, self.patterns = http, page_size, tuple(repositories)
        # config digest -> (created, revision)
        self._configs: dict[str, tuple[dt.datetime | None, str | None]] = {}
        # manifest digest -> (created, size, revision)
        self._resolved: dict[str, _Details] = {}

    @property
    def host(self) -> str:
        return self.http.host

    def _obj(self, repository: str | None = None, reference: str | None = None) -> str:
        where = self.http.url + (f" {repository}" if repository else "")
        if reference:
            where += f"@{reference}" if ":" in reference else f":{reference}"
        return where

    def _pages(self, path: str, key: str, obj: str, scope: str) -> Iterator[str]:
        """The string items of `key` over every page, following `Link: rel="next"`."""
        url, params, seen = path, {"n": self.page_size}, set()
        while True:
            response = self.http.request("GET", url, obj, scope, params=params)
            body = parse_json(
                SYSTEM, obj, response.content, response.headers.get("Content-Type", "")
            )
            items = Fields(SYSTEM, obj, body).get(key, list, default=[])
            for index, item in enumerate(items):
                if not isinstance(item, str):
                    raise SourceDataError(SYSTEM, obj, "expected a string", field=f"{key}[{index}]")
                yield item
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            url = urljoin(response.url, following)
            if url in seen:
                raise SourceDataError(SYSTEM, obj, f"Link rel=next loops back to {url}")
            seen.add(url)
            params = None  # the next link carries `n` and `last` itself

    def catalog(self) -> list[str]:
        """Every repository the registry lists (`/v2/_catalog`, all pages)."""
        return list(self._pages("/v2/_catalog", "repositories", self._obj(), "registry:catalog:*"))

    def repositories(self) -> list[str]:
        """The repositories to read: the configured globs matched against the catalog, or the
        configured names themselves when none is a glob."""
        if self.patterns and not any(set(p) & set("*?[") for p in self.patterns):
            return sorted({check_repository(p) for p in self.patterns})
        names = self.catalog()
        return [
            n for n in names if not self.patterns or any(fnmatchcase(n, p) for p in self.patterns)
        ]

    def tags(self, repository: str) -> list[str]:
        """Every tag of a repository (all pages); raises SourceNotFoundError if it is unknown."""
        check_repository(repository)
        return list(
            self._pages(
                f"/v2/{repository}/tags/list",
                "tags",
                self._obj(repository),
                f"repository:{repository}:pull",
            )
        )

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index a tag or digest points at, with the digest of its bytes."""
        obj = self._obj(check_repository(repository), check_reference(reference))
        response = self.http.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            obj,
            f"repository:{repository}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        return parse_manifest(
            repository,
            reference,
            response.content,
            response.headers.get("Content-Type", ""),
            response.headers.get("Docker-Content-Digest"),
            obj,
        )

    def head(self, repository: str, reference: str) -> tuple[str, str]:
        """Digest and media type of a tag, from one HEAD (a GET if the registry sends no
        `Docker-Content-Digest`); HEADs do not count against Docker Hub's pull limits."""
        obj = self._obj(check_repository(repository), check_reference(reference))
        response = self.http.request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            obj,
            f"repository:{repository}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            manifest = self.manifest(repository, reference)
            return manifest.digest, manifest.media_type
        return digest, response.headers.get("Content-Type", "").split(";")[0].strip()

    def digest(self, repository: str, tag: str) -> str:
        """The digest a tag points at now (one HEAD)."""
        return self.head(repository, tag)[0]

    def _config(self, repository: str, config_digest: str) -> tuple[dt.datetime | None, str | None]:
        """The image config's `created` and revision label (`parse_revision`)."""
        if config_digest not in self._configs:
            obj = self._obj(repository, config_digest)
            response = self.http.request(
                "GET",
                f"/v2/{repository}/blobs/{config_digest}",
                obj,
                f"repository:{repository}:pull",
            )
            if (
                config_digest.startswith("sha256:")
                and sha256_digest(response.content) != config_digest
            ):
                raise SourceDataError(SYSTEM, obj, "config blob does not match its digest")
            data = parse_json(
                SYSTEM, obj, response.content, response.headers.get("Content-Type", "")
            )
            created = data.get("created") if isinstance(data, dict) else None
            self._configs[config_digest] = (parse_created(created, obj), parse_revision(data))
        return self._configs[config_digest]

    def _resolve(self, manifest: Manifest, depth: int = 0) -> _Details:
        """Created time, size and revision of a manifest; an index's from its representative
        image."""
        if manifest.digest not in self._resolved:
            if manifest.is_index:
                entry = pick_platform(manifest.manifests)
                if entry is None or depth > 1:
                    self._resolved[manifest.digest] = (None, None, None)
                else:
                    child = self.manifest(manifest.repository, entry.digest)
                    self._resolved[manifest.digest] = self._resolve(child, depth + 1)
            else:
                config = manifest.config_digest
                created, revision = (
                    self._config(manifest.repository, config) if config else (None, None)
                )
                self._resolved[manifest.digest] = (created, manifest.size, revision)
        return self._resolved[manifest.digest]

    def created(self, repository: str, reference: str) -> dt.datetime | None:
        """When the image was built: its config's `created` (an index: its linux/amd64 image's)."""
        return self._resolve(self.manifest(repository, reference))[0]

    def images(self, details: bool = True) -> Iterator[Image]:
        """Every tag of every configured repository, in name order.

        Args:
            details: read manifests and configs for `created`, `size` and `revision`;
                without, one HEAD per tag gives the digest and media type only (what the
                sensor needs).
        """
        for repository in self.repositories():
            for tag in sorted(self.tags(repository)):
                try:
                    if not details:
                        digest, media_type = self.head(repository, tag)
                        yield Image(self.host, repository, tag, digest, media_type)
                        continue
                    manifest = self.manifest(repository, tag)
                    created, size, revision = self._resolve(manifest)
                except SourceNotFoundError as error:  # deleted between listing and reading
                    log.warning("skipping %s:%s, gone while listing: %s", repository, tag, error)
                    continue
                yield Image(
                    self.host,
                    repository,
                    tag,
                    manifest.digest,
                    manifest.media_type,
                    created,
                    size,
                    revision,
                )
