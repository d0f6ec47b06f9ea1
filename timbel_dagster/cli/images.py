"""How commands resolve an image tag the warehouse does not know: the configured registry."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.security.image_ref import DigestLookup
    from timbel_dagster.settings import Settings


def registry_lookup(settings: Settings) -> DigestLookup | None:
    """The manifest HEAD of the registry the settings name (HARBOR_REGISTRY, REGISTRY_USERNAME,
    REGISTRY_PASSWORD) as a `DigestLookup`, or None when none is configured. Each tag is
    asked once per command (answers are kept)."""
    # lazy: resources.registry loads Dagster; `timbel --help` loads without it
    from timbel_dagster.resources.registry import RegistryResource

    if not settings.harbor_registry:
        return None
    secret = settings.registry_password
    registry = RegistryResource(
        url=str(settings.harbor_registry),
        username=settings.registry_username,
        password=secret.get_secret_value() if secret else None,
    )
    return functools.cache(registry.find_digest)


def between_reads(connection: Connection, lookup: DigestLookup | None) -> DigestLookup | None:
    """`lookup` for a command's read-only warehouse `connection`: the read transaction its
    queries opened is ended before the registry is asked, so no HTTP call runs inside an
    open transaction (DESIGN 1b); the next query starts a new one. Read-only connections
    only: ending the transaction discards nothing there."""
    if lookup is None:
        return None

    def ask(registry: str, repository: str, reference: str) -> str | None:
        if connection.in_transaction():
            connection.rollback()
        return lookup(registry, repository, reference)

    return ask
