"""The interfaces delivery sources implement, and the records they return.

Real clients (Jenkins, GitLab, the deploy job, incident tools) and the sample organisation
both produce the frozen dataclasses of `timbel_dagster.records.delivery`; ingestion only ever
sees them, never raw JSON. Import the records from there: this module holds only the
interfaces and the error a missing source raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Protocol

from timbel_dagster.records.delivery import (
    ClusterRecord,
    CommitRecord,
    DeploymentRecord,
    ExecutionRecord,
    IncidentRecord,
    PipelineRecord,
    RejectRecord,
    UserRecord,
)

__all__ = ["CISource", "DeliveryHistorySource", "SourceNotConfiguredError"]


class SourceNotConfiguredError(RuntimeError):
    """No source of this kind is configured; the message says which settings to set."""


class CISource(Protocol):
    """A CI/CD server: its pipelines and their executions with stages."""

    name: str  # the `source` column value: 'sample', 'jenkins', 'gitlab'

    def pipelines(self) -> list[PipelineRecord | RejectRecord]:
        """The pipelines, and any entry of the source's list that could not be parsed."""
        ...

    def executions(
        self,
        since: dt.datetime,
        until: dt.datetime,
        final: frozenset[tuple[str, str]] = frozenset(),
    ) -> Iterator[ExecutionRecord | RejectRecord]:
        """Executions that started in [since, until), stages included.

        `final` names (pipeline, external_id) pairs already stored as finished: a source may
        skip reading their details again. A record that cannot be parsed comes as a
        `RejectRecord` in the same stream, so nothing read is dropped unseen.
        """
        ...


class DeliveryHistorySource(Protocol):
    """Who works here, where things run, what shipped and what broke."""

    name: str

    def users(self) -> list[UserRecord]: ...

    def clusters(self) -> list[ClusterRecord]: ...

    def commits(self, since: dt.datetime, until: dt.datetime) -> list[CommitRecord]: ...

    def deployments(self, since: dt.datetime, until: dt.datetime) -> list[DeploymentRecord]: ...

    def incidents(self, since: dt.datetime, until: dt.datetime) -> list[IncidentRecord]: ...
