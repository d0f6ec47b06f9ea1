"""Warehouse tables of repository component analyses (security/components)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, Timestamps
from timbel_dagster.warehouse.schema.types import JSONType


class RepositoryAnalysis(Timestamps, Base):
    """The latest analysis of one repository: what it is made of, and its CycloneDX SBOM.

    `repository` is the checkout's path or the git URL analysed; `commit` is the checkout's
    HEAD when it is the top of a git work tree (None otherwise). A new analysis of the same
    repository replaces the row.
    """

    __tablename__ = "repository_analyses"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))  # sample | local | git
    repository: Mapped[str] = mapped_column(String(1024), unique=True)
    analysed_at: Mapped[dt.datetime]
    commit: Mapped[str | None] = mapped_column(String(64))  # sha-1 or sha-256 hex
    files_scanned: Mapped[int] = mapped_column(Integer)
    languages: Mapped[dict[str, Any]]  # language -> bytes
    frameworks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    build_tools: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    dockerfiles: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    ci_files: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    manifests: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    sbom: Mapped[dict[str, Any]]  # the CycloneDX 1.5 document


class RepositoryDependency(Base):
    """One package a manifest or lockfile of an analysed repository names.

    `version` is the resolved version when a lockfile gives one, else the declared
    specification, else None. The rows of a repository are replaced on each analysis.
    """

    __tablename__ = "repository_dependencies"
    __table_args__ = (
        UniqueConstraint(
            "repository",
            "ecosystem",
            "name",
            "version",
            "manifest",
            name="uq_repository_dependencies_natural_key",  # the generated name is too long
        ),
        Index(None, "ecosystem", "name"),  # which repositories use a package
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    repository: Mapped[str] = mapped_column(String(1024))
    ecosystem: Mapped[str] = mapped_column(String(16))  # npm, maven, pypi, golang, cargo, nuget
    name: Mapped[str] = mapped_column(String(512))
    version: Mapped[str | None] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(String(16))  # runtime, dev, test
    manifest: Mapped[str] = mapped_column(String(1024))
    direct: Mapped[bool] = mapped_column(Boolean)
