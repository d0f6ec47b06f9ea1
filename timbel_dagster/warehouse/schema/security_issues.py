"""Warehouse tables of the follow-up on security findings: the GitLab issue opened for each
vulnerability finding, and SonarQube quality gates."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base, Timestamps, _in
from timbel_dagster.warehouse.schema.types import JSONType

ISSUE_STATES = ("opened", "closed")  # GitLab's own words
CLOSE_REASONS = (
    "fixed",  # Timbel closed it: a later scan no longer reported the finding
    "gitlab",  # someone closed it in GitLab while the finding was still open
)
GATE_STATUSES = ("OK", "WARN", "ERROR", "NONE")  # SonarQube's projectStatus.status


class SecurityIssueLink(Timestamps, Base):
    """The GitLab issue of one vulnerability finding in one project.

    `state` is what Timbel last knew of the issue; `close_reason` tells an issue Timbel closed
    because the finding was fixed (reopened if the finding comes back) from one closed by a
    person (left closed).
    """

    __tablename__ = "security_issue_links"
    __table_args__ = (
        Unique("project", "issue_iid"),
        CheckConstraint(_in("state", ISSUE_STATES), name="state"),
        Index(None, "project", "state"),
    )

    finding_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("vulnerability_findings.id", ondelete="CASCADE"), primary_key=True
    )
    project: Mapped[str] = mapped_column(String(256), primary_key=True)  # id or path
    issue_iid: Mapped[int] = mapped_column(Integer)
    web_url: Mapped[str | None] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(String(16))
    opened_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]


class QualityGate(Timestamps, Base):
    """One SonarQube analysis of one project: its quality gate and headline measures."""

    __tablename__ = "quality_gates"
    __table_args__ = (
        Unique("project_key", "analysed_at"),
        CheckConstraint(_in("status", GATE_STATUSES), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))  # sonarqube
    project_key: Mapped[str] = mapped_column(String(400))  # SonarQube's longest key
    analysed_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(8))
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    measures: Mapped[dict[str, Any]]  # metric key -> number (or text for ratings)
