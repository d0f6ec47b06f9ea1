"""Read-side queries over executions, shared by the CLI, the API and notebooks."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.delivery import StoredStage
from timbel_dagster.records.marks import StoredMark
from timbel_dagster.warehouse.read.scope import service_tenant, service_visible
from timbel_dagster.warehouse.read.substring import check_search, contains_text
from timbel_dagster.warehouse.schema.ingestion import IngestionReject
from timbel_dagster.warehouse.schema.models import (
    EXECUTION_STATUSES,
    ExecutionLog,
    ExecutionLogChunk,
    Pipeline,
    PipelineExecution,
    StageExecution,
)
from timbel_dagster.warehouse.store.loaders import pipeline_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_HEX = re.compile(r"[0-9a-f]+")
_SUMMARY_COLUMNS = (
    PipelineExecution.id,
    Pipeline.name.label("pipeline"),
    PipelineExecution.source,
    PipelineExecution.external_id,
    PipelineExecution.status,
    PipelineExecution.triggered_by,
    PipelineExecution.started_at,
    PipelineExecution.completed_at,
    PipelineExecution.duration,
    PipelineExecution.branch,
    PipelineExecution.commit_sha,
    PipelineExecution.error_message,
)


@dataclass(frozen=True)
class ExecutionFilter:
    pipeline: str | None = None  # substring of the pipeline name
    status: str | None = None
    since: dt.datetime | None = None
    # Text in the stored log or the error message (3 characters at least: `check_search`).
    search: str | None = None
    limit: int = 50
    # Keyset paging: only executions after this (started_at, id) in the list's order, so a
    # page costs the same however deep it is (the (started_at, id) index of migration 0019).
    # started_at None means the previous page ended among executions with no start time.
    after: tuple[dt.datetime | None, uuid.UUID] | None = None
    # Tenant scope: None for every tenant, else only executions of pipelines whose service
    # is in one of these tenants or in none (`warehouse.read.scope`).
    tenants: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.status and self.status not in EXECUTION_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(EXECUTION_STATUSES)}, not {self.status!r}"
            )
        if self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.search:
            check_search(self.search)


def _plain(row: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row._mapping.items()}


def list_executions(connection: Connection, where: ExecutionFilter) -> list[dict[str, Any]]:
    """Executions matching the filter, newest first (ties by id, descending; executions
    not started yet first, on both backends), after `where.after` if given.

    Not-started first is PostgreSQL's own order for DESC, so its (started_at, id) index is
    read backwards with no sort (NULLS LAST would scan and sort the whole table)."""
    from sqlalchemy import select

    query = select(*_SUMMARY_COLUMNS).join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
    if where.pipeline:
        query = query.where(Pipeline.name.ilike(f"%{where.pipeline}%"))
    if where.status:
        query = query.where(PipelineExecution.status == where.status)
    if where.since:
        query = query.where(PipelineExecution.started_at >= where.since)
    if where.search:
        query = query.where(PipelineExecution.id.in_(_searched(where.search)))
    if where.after:
        query = query.where(_after(*where.after))
    if where.tenants is not None:
        query = query.where(service_visible(Pipeline.service, where.tenants))
    started, ident = PipelineExecution.started_at, PipelineExecution.id
    query = query.order_by(started.desc().nulls_first(), ident.desc()).limit(where.limit)
    return [_plain(row) for row in connection.execute(query)]


def _searched(text: str) -> Any:
    """The ids of executions whose stored log or error message holds `text`: a union of two
    `ILIKE` matches that PostgreSQL answers from the trigram indexes of migration 0021 (an
    `EXISTS ... OR error_message ILIKE` per execution would walk the executions instead)."""
    from sqlalchemy import select, union

    chunk = ExecutionLogChunk.__table__
    return union(
        select(chunk.c.execution_id).where(contains_text(chunk.c.content, text)),
        select(PipelineExecution.id).where(contains_text(PipelineExecution.error_message, text)),
    )


def _after(started_at: dt.datetime | None, ident: uuid.UUID) -> Any:
    """The rows that follow (started_at, ident) in list_executions' order."""
    from sqlalchemy import and_, or_, tuple_

    started, column = PipelineExecution.started_at, PipelineExecution.id
    if started_at is None:
        return or_(and_(started.is_(None), column < ident), started.is_not(None))
    # A row value, which PostgreSQL answers from the (started_at, id) index.
    return tuple_(started, column) < tuple_(started_at, ident)


def get_execution(connection: Connection, ident: str) -> dict[str, Any] | None:
    """One execution with its stages and log, by full id or an unambiguous id prefix.

    Raises:
        LookupError: the prefix matches more than one execution.
    """
    from sqlalchemy import select

    query = select(
        *_SUMMARY_COLUMNS,
        PipelineExecution.url,
        PipelineExecution.queue_seconds,
        PipelineExecution.artifacts,
        PipelineExecution.logs,
        Pipeline.service,
        service_tenant(Pipeline.service).label("tenant"),
    ).join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
    try:
        rows = connection.execute(query.where(PipelineExecution.id == uuid.UUID(ident))).all()
    except ValueError:
        prefix = ident.replace("-", "").lower()
        if len(prefix) < 6:
            raise LookupError("give at least 6 characters of the execution id") from None
        if len(prefix) > 32 or not _HEX.fullmatch(prefix):
            return None  # no id starts with it
        # The ids that start with the prefix are one range of the primary key, which both
        # backends read through its index (a LIKE on the id as text would scan the table).
        low, high = uuid.UUID(prefix.ljust(32, "0")), uuid.UUID(prefix.ljust(32, "f"))
        rows = connection.execute(
            query.where(PipelineExecution.id.between(low, high)).limit(2)
        ).all()
    if len(rows) > 1:
        raise LookupError(f"execution id prefix {ident!r} is ambiguous")
    if not rows:
        return None
    execution = _plain(rows[0])
    execution["stages"] = execution_stages(connection, uuid.UUID(execution["id"]))
    return execution


def execution_stages(connection: Connection, execution_id: uuid.UUID) -> list[dict[str, Any]]:
    """The stages of one execution in their order (position, then attempt)."""
    from sqlalchemy import select

    stages = connection.execute(
        select(
            StageExecution.name,
            StageExecution.parent_name,
            StageExecution.position,
            StageExecution.status,
            StageExecution.started_at,
            StageExecution.duration,
            StageExecution.queue_seconds,
            StageExecution.attempt,
            StageExecution.error_message,
        )
        .where(StageExecution.execution_id == execution_id)
        .order_by(StageExecution.position, StageExecution.attempt)
    )
    return [_plain(stage) for stage in stages]


FINAL_STATUSES = ("success", "failed", "aborted")


def _finished(status: str, completed_at: dt.datetime | None) -> bool:
    """Finished: a final status, or `unknown` (a status the source added) with an end time."""
    return status in FINAL_STATUSES or (status == "unknown" and completed_at is not None)


def _is_finished() -> Any:
    from sqlalchemy import and_, or_

    return or_(
        PipelineExecution.status.in_(FINAL_STATUSES),
        and_(PipelineExecution.status == "unknown", PipelineExecution.completed_at.is_not(None)),
    )


def stored_marks(
    connection: Connection, source: str, above: dict[str, int]
) -> dict[str, StoredMark]:
    """For each pipeline, the highest build stored finished (or rejected as unparsable) above
    its old mark, below any stored build that is still unfinished. Reads only rows above the
    old marks (through the `(pipeline_id, sequence)` index), so the cost follows what is new,
    not the history.

    A build in `ingestion_rejects` counts as handled: it was read and kept, and reading it
    again gives the same reject, so a mark must be able to pass it.
    """
    from sqlalchemy import and_, or_, select

    if not above:
        return {}
    names = {pipeline_id(source, name): name for name in above}
    query = select(
        PipelineExecution.pipeline_id,
        PipelineExecution.sequence,
        PipelineExecution.status,
        PipelineExecution.started_at,
        PipelineExecution.completed_at,
    ).where(
        # no `source` filter: the pipeline ids imply it, and a filter on it would steer
        # PostgreSQL to the unique index that starts with `source` instead of the
        # (pipeline_id, sequence) index that finds just the rows above each mark
        or_(
            *(
                and_(
                    PipelineExecution.pipeline_id == ident, PipelineExecution.sequence > above[name]
                )
                for ident, name in names.items()
            )
        ),
    )
    rows: dict[str, list[tuple[int, bool, dt.datetime | None]]] = {}
    for ident, sequence, status, started, completed in connection.execute(query):
        rows.setdefault(names[ident], []).append((sequence, _finished(status, completed), started))
    rejected = select(IngestionReject.pipeline, IngestionReject.sequence).where(
        IngestionReject.source == source,
        IngestionReject.kind.in_(("build", "pipeline")),
        or_(
            *(
                and_(IngestionReject.pipeline == name, IngestionReject.sequence > mark)
                for name, mark in above.items()
            )
        ),
    )
    for name, sequence in connection.execute(rejected):
        rows.setdefault(name, []).append((sequence, True, None))
    marks = {}
    for name, builds in rows.items():
        unfinished = [s for s, finished, _ in builds if not finished]
        ceiling = min(unfinished) if unfinished else None
        done = [
            (s, t) for s, finished, t in builds if finished and (ceiling is None or s < ceiling)
        ]
        if done:
            sequence, _ = max(done, key=lambda b: b[0])
            # where the next batch starts reading: the newest stored build's day (a reject
            # may have no time)
            days = [t for s, t in sorted(done, reverse=True) if t is not None]
            marks[name] = StoredMark(sequence, days[0].date().isoformat() if days else None)
    return marks


def finished_executions(
    connection: Connection, source: str, since: dt.datetime, until: dt.datetime
) -> frozenset[tuple[str, str]]:
    """(pipeline name, external id) of the source's finished executions started in the window."""
    from sqlalchemy import select

    query = (
        select(Pipeline.name, PipelineExecution.external_id)
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(
            PipelineExecution.source == source,
            PipelineExecution.started_at >= since,
            PipelineExecution.started_at < until,
            _is_finished(),
        )
    )
    return frozenset((name, external) for name, external in connection.execute(query))


def executions_missing_logs(
    connection: Connection,
    since: dt.datetime,
    until: dt.datetime,
    statuses: tuple[str, ...],
    limit: int,
) -> list[tuple[str, str, str, uuid.UUID]]:
    """(source, pipeline, external id, execution id) of finished executions started in the
    window whose log is not stored whole yet, oldest first."""
    from sqlalchemy import select

    logs = ExecutionLog.__table__
    complete = (
        select(logs.c.execution_id)
        .where(logs.c.execution_id == PipelineExecution.id, logs.c.complete.is_(True))
        .exists()
    )
    query = (
        select(
            PipelineExecution.source,
            Pipeline.name,
            PipelineExecution.external_id,
            PipelineExecution.id,
        )
        .join(Pipeline, Pipeline.id == PipelineExecution.pipeline_id)
        .where(
            PipelineExecution.started_at >= since,
            PipelineExecution.started_at < until,
            PipelineExecution.status.in_(statuses),
            ~complete,
        )
        .order_by(PipelineExecution.started_at)
        .limit(limit)
    )
    return [tuple(row) for row in connection.execute(query)]  # type: ignore[misc]


def finished_stages(
    connection: Connection, source: str, since: dt.datetime, until: dt.datetime
) -> list[StoredStage]:
    """The finished stages (success, failed, aborted) of `source`'s stored executions that
    started in [since, until), oldest first, with their pipeline."""
    from sqlalchemy import select

    query = (
        select(
            Pipeline.name,
            Pipeline.service,
            Pipeline.repository,
            PipelineExecution.external_id,
            PipelineExecution.commit_sha,
            PipelineExecution.triggered_by,
            StageExecution.external_id,
            StageExecution.name,
            StageExecution.status,
            StageExecution.started_at,
            StageExecution.duration,
        )
        .join(PipelineExecution, PipelineExecution.pipeline_id == Pipeline.id)
        .join(StageExecution, StageExecution.execution_id == PipelineExecution.id)
        .where(
            PipelineExecution.source == source,
            StageExecution.started_at >= since,
            StageExecution.started_at < until,
            StageExecution.status.in_(("success", "failed", "aborted")),
        )
        .order_by(StageExecution.started_at)
    )
    return [StoredStage(*row) for row in connection.execute(query)]


def execution_tenant(connection: Connection, execution_id: uuid.UUID) -> tuple[str | None] | None:
    """(tenant,) of an execution, its pipeline's service's tenant (None: no tenant); None
    when there is no such execution."""
    from sqlalchemy import select

    query = (
        select(service_tenant(Pipeline.service))
        .select_from(Pipeline)
        .join(PipelineExecution, PipelineExecution.pipeline_id == Pipeline.id)
        .where(PipelineExecution.id == execution_id)
    )
    row = connection.execute(query).first()
    return (row[0],) if row is not None else None
