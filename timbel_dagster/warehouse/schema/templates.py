"""Warehouse tables of the templates features: pipeline templates, their immutable versions,
tags, shares, ratings and where they were applied."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, Timestamps, _in, _now

TEMPLATE_KINDS = ("jenkinsfile", "gitlab-ci")
VISIBILITIES = ("private", "team", "public")
GRANTEE_KINDS = ("user", "team")
TARGET_KINDS = ("repository", "jenkins")


class PipelineTemplate(Timestamps, Base):
    """A named pipeline template; its content lives in `pipeline_template_versions`."""

    __tablename__ = "pipeline_templates"
    __table_args__ = (
        CheckConstraint(_in("kind", TEMPLATE_KINDS), name="kind"),
        CheckConstraint(_in("visibility", VISIBILITIES), name="visibility"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128))  # whose members see `team` templates
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    description: Mapped[str] = mapped_column(Text, default="")
    # Retired (`pipeline_templates.retirement`): hidden from lists, no new versions, ratings,
    # tags or applications; its versions stay readable. NULL while in use.
    retired_at: Mapped[dt.datetime | None]
    retired_by: Mapped[str | None] = mapped_column(String(128))
    retired_reason: Mapped[str | None] = mapped_column(Text)


class PipelineTemplateVersion(Base):
    """One published version. Rows are only ever inserted: no code path updates one, a
    rollback publishes a new version with the old content."""

    __tablename__ = "pipeline_template_versions"
    __table_args__ = (
        UniqueConstraint("template_id", "version"),
        CheckConstraint("version >= 1", name="version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipeline_templates.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    # name -> {"default": ..., "description": str, "required": bool}
    parameters: Mapped[dict[str, Any]]
    content_sha256: Mapped[str] = mapped_column(String(64))
    release_notes: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    rollback_of_version: Mapped[int | None] = mapped_column(Integer)


class PipelineTemplateTag(Base):
    """A movable name (`stable`) for one version of a template."""

    __tablename__ = "pipeline_template_tags"

    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipeline_templates.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now)


class PipelineTemplateShare(Base):
    """A user or a team granted sight of a template beyond its visibility."""

    __tablename__ = "pipeline_template_shares"
    __table_args__ = (CheckConstraint(_in("grantee_kind", GRANTEE_KINDS), name="grantee_kind"),)

    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipeline_templates.id", ondelete="CASCADE"), primary_key=True
    )
    grantee_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    grantee: Mapped[str] = mapped_column(String(128), primary_key=True)
    granted_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class PipelineTemplateRating(Base):
    """One user's stars and review of a template; rating again replaces it."""

    __tablename__ = "pipeline_template_ratings"
    __table_args__ = (
        UniqueConstraint("template_id", "user"),
        CheckConstraint("stars BETWEEN 1 AND 5", name="stars"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipeline_templates.id", ondelete="CASCADE")
    )
    user: Mapped[str] = mapped_column(String(128))
    stars: Mapped[int] = mapped_column(Integer)
    review: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class PipelineTemplateUsage(Base):
    """One application of a template version to a repository or a Jenkins job."""

    __tablename__ = "pipeline_template_usage"
    __table_args__ = (
        CheckConstraint(_in("target_kind", TARGET_KINDS), name="target_kind"),
        Index(None, "template_id", "applied_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipeline_templates.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    target_kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(1024))  # repository path or Jenkins job name
    applied_by: Mapped[str] = mapped_column(String(128))
    applied_at: Mapped[dt.datetime] = mapped_column(default=_now)
