"""How commands resolve an image tag the warehouse does not know: the configured registry
(`registry_lookup`, shared with the API in `deploy.service`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from timbel_dagster.deploy.service import registry_lookup

__all__ = ["between_reads", "registry_lookup"]

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from timbel_dagster.security.image_ref import DigestLookup


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
