"""The sample organisation behind the same interfaces as the real sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cached_property

from timbel_dagster.records.delivery import (
    ClusterRecord,
    CommitRecord,
    DeploymentRecord,
    ExecutionRecord,
    IncidentRecord,
    PipelineRecord,
    UserRecord,
)
from timbel_dagster.resources.sample.history import DAYS, SampleHistory, generate_history
from timbel_dagster.resources.sample.logs import sample_log
from timbel_dagster.resources.sample.organisation import CLUSTERS, SAMPLE_SOURCE, USERS


def _within(moment: dt.datetime | None, since: dt.datetime, until: dt.datetime) -> bool:
    return moment is not None and since <= moment < until


class SampleSource:
    """A CI source and delivery-history source that serves the seeded sample organisation."""

    name = SAMPLE_SOURCE

    def __init__(self, end_date: dt.date, seed: int = 7, days: int = DAYS) -> None:
        self.end_date, self.seed, self.days = end_date, seed, days

    @property
    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """The [start, end) instants the sample history covers."""
        end = dt.datetime.combine(self.end_date, dt.time(), dt.UTC)
        # Prod hotfixes may land up to a few hours past the last day; leave room for them.
        return end - dt.timedelta(days=self.days + 1), end + dt.timedelta(days=2)

    @cached_property
    def history(self) -> SampleHistory:
        return generate_history(self.end_date, self.seed, self.days)

    def users(self) -> list[UserRecord]:
        return list(USERS)

    def clusters(self) -> list[ClusterRecord]:
        return list(CLUSTERS)

    def pipelines(self) -> list[PipelineRecord]:
        return list(self.history.pipelines)

    def executions(
        self,
        since: dt.datetime,
        until: dt.datetime,
        final: frozenset[tuple[str, str]] = frozenset(),
    ) -> Iterator[ExecutionRecord]:
        return (e for e in self.history.executions if _within(e.started_at, since, until))

    def log(self, pipeline: str, external_id: str) -> str:
        """The console log of one sample build."""

        for execution in self.history.executions:
            if execution.pipeline == pipeline and execution.external_id == external_id:
                return sample_log(execution)
        raise LookupError(f"sample: no build {pipeline} #{external_id}")

    def commits(self, since: dt.datetime, until: dt.datetime) -> list[CommitRecord]:
        return [c for c in self.history.commits if _within(c.committed_at, since, until)]

    def deployments(self, since: dt.datetime, until: dt.datetime) -> list[DeploymentRecord]:
        return [d for d in self.history.deployments if _within(d.started_at, since, until)]

    def incidents(self, since: dt.datetime, until: dt.datetime) -> list[IncidentRecord]:
        return [i for i in self.history.incidents if _within(i.opened_at, since, until)]
