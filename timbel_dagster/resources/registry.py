"""`RegistryResource`: an OCI distribution (v2) registry — Harbor, Nexus, GitLab's,
`docker-registry` or any other — as a Dagster resource.

The calls and their costs are in `registry_client`, authentication and retries in
`registry_http`, the records in `registry_records`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import PrivateAttr

from timbel_dagster.resources.delivery import SourceNotConfiguredError
from timbel_dagster.resources.errors import SourceNotFoundError
from timbel_dagster.resources.registry_records import Image, Manifest
from timbel_dagster.settings import get_settings

if TYPE_CHECKING:
    from timbel_dagster.resources.registry_client import RegistryClient


def _plain_host(host: str) -> str:
    """`host[:port]` without a default port, lower case: how two names of a registry compare."""
    host = host.lower()
    for port in (":443", ":80"):
        host = host.removesuffix(port)
    return host


class RegistryResource(dg.ConfigurableResource):
    """An OCI registry. Unset `url`, `username` and `password` come from HARBOR_REGISTRY,
    REGISTRY_USERNAME and REGISTRY_PASSWORD when a run first uses it.

    `repositories` holds names or globs (`team/*`); empty reads the whole catalog. Bind
    `password` and `token` with `dg.EnvVar`: they are secrets. `token_realms` (unset:
    TIMBEL_REGISTRY_TOKEN_REALMS) names the token services on other hosts, or on plain http,
    that may receive the credentials (`registry_realm`).
    """

    url: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    verify_tls: bool = True
    timeout: float = 30.0
    page_size: int = 100
    repositories: list[str] | None = None
    retry_backoff_seconds: float = 0.5  # first retry's wait; doubles each time
    token_realms: list[str] | None = None

    _client: RegistryClient | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        """What warehouse rows from this registry say in their `source` column."""
        # lazy: resources.registry_http loads requests; the code location loads without it
        from timbel_dagster.resources.registry_http import SYSTEM

        return SYSTEM

    def _url(self) -> str | None:
        if self.url:
            return self.url

        configured = get_settings().harbor_registry
        return str(configured) if configured else None

    def configured(self) -> bool:
        return bool(self._url())

    def client(self) -> RegistryClient:
        """The client, made on first use and kept, so bearer tokens are reused."""
        if self._client is None:
            # lazy: the client and its HTTP layer load requests on first use; the code
            # location loads without it
            from timbel_dagster.resources.registry_client import RegistryClient
            from timbel_dagster.resources.registry_http import RegistryHTTP

            url = self._url()
            if not url:
                raise SourceNotConfiguredError(
                    "the OCI registry is not configured: set HARBOR_REGISTRY (and "
                    "REGISTRY_USERNAME, REGISTRY_PASSWORD if it needs credentials)"
                )
            settings = get_settings()
            username = self.username or settings.registry_username
            secret = settings.registry_password
            password = self.password or (secret.get_secret_value() if secret else None)
            realms = self.token_realms
            if realms is None:
                realms = settings.timbel_registry_token_realms
            http = RegistryHTTP(
                url,
                username,
                password,
                self.token,
                verify_tls=self.verify_tls,
                timeout=self.timeout,
                backoff_seconds=self.retry_backoff_seconds,
                token_realms=realms,
            )
            self._client = RegistryClient(http, self.page_size, self.repositories or ())
        return self._client

    @property
    def host(self) -> str:
        return self.client().host

    def catalog(self) -> list[str]:
        return self.client().catalog()

    def tags(self, repository: str) -> list[str]:
        return self.client().tags(repository)

    def manifest(self, repository: str, reference: str) -> Manifest:
        return self.client().manifest(repository, reference)

    def digest(self, repository: str, tag: str) -> str:
        return self.client().digest(repository, tag)

    def find_digest(self, registry: str, repository: str, reference: str) -> str | None:
        """The digest `registry/repository:reference` points at now (one manifest HEAD), or
        None when this is not that registry (or none is configured) or it has no such tag.
        Any other failure raises: a registry that cannot answer is not an unknown image."""
        if not self.configured() or _plain_host(registry) != _plain_host(self.host):
            return None
        try:
            return self.client().digest(repository, reference)
        except SourceNotFoundError:
            return None

    def created(self, repository: str, reference: str) -> dt.datetime | None:
        return self.client().created(repository, reference)

    def images(self, details: bool = True) -> Iterator[Image]:
        return self.client().images(details)
