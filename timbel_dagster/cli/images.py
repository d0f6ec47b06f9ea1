"""How commands resolve an image tag the warehouse does not know: the configured registry."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timbel_dagster.security.image_ref import DigestLookup
    from timbel_dagster.settings import Settings


def registry_lookup(settings: Settings) -> DigestLookup | None:
    """The manifest HEAD of the registry the settings name (HARBOR_REGISTRY, REGISTRY_USERNAME,
    REGISTRY_PASSWORD) as a `DigestLookup`, or None when none is configured. Each tag is
    asked once per command (answers are kept)."""
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
