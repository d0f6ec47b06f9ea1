"""Warehouse tables of container images seen in OCI registries."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base


class RegistryImage(Base):
    """One tag of one repository in a registry, and the image it points at now.

    `first_seen` is when a listing first found the tag; `last_seen` when one last did, so a
    tag deleted from the registry keeps its row with a `last_seen` that stops moving.
    """

    __tablename__ = "registry_images"
    __table_args__ = (
        UniqueConstraint("registry", "repository", "tag"),
        Index(None, "digest"),  # scan results and deployments join on the digest
        # The gate resolves a tag by lower(registry), which the unique index cannot serve.
        Index(None, "repository", "tag"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    registry: Mapped[str] = mapped_column(String(256))  # host[:port]
    repository: Mapped[str] = mapped_column(String(512))
    tag: Mapped[str] = mapped_column(String(128))  # the distribution spec's limit
    digest: Mapped[str] = mapped_column(String(160))  # sha256:<64 hex>, room for sha512
    media_type: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime | None]  # the image config's build time
    size: Mapped[int | None] = mapped_column(BigInteger)  # config + compressed layers, bytes
    # The commit it was built from, as its config's labels say (org.opencontainers.image.revision)
    revision: Mapped[str | None] = mapped_column(String(128))
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
