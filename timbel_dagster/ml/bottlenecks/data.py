"""The warehouse rows the pipeline-bottleneck analysis reads, as DataFrames.

Two set-based selects (SQLAlchemy core, the same on SQLite and PostgreSQL): executions and
their stages, each with the pipeline's name joined, so that `bottlenecks.analyse_pipelines`
works on plain frames that tests can build by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd
    from sqlalchemy.engine import Connection

EXECUTION_COLUMNS = [
    "id",
    "pipeline",
    "source",
    "external_id",
    "sequence",
    "status",
    "started_at",
    "duration",
    "queue_seconds",
    "commit_sha",
]
STAGE_COLUMNS = [
    "execution_id",
    "pipeline",
    "name",
    "parent_name",
    "position",
    "status",
    "started_at",
    "duration",
    "queue_seconds",
    "attempt",
]


def load_frames(
    connection: Connection, since: dt.datetime | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read pipeline executions and their stage executions, with the pipeline's name.

    Args:
        connection: a warehouse connection.
        since: only executions that started at or after this moment (all when None).

    Returns:
        (executions, stages) with the columns `EXECUTION_COLUMNS` and `STAGE_COLUMNS`,
        ordered by pipeline and start time; `started_at` as UTC timestamps.
    """
    import pandas as pd
    from sqlalchemy import select

    # lazy: warehouse.schema.models loads SQLAlchemy; the code location loads without it
    from timbel_dagster.warehouse.schema.models import Pipeline as P
    from timbel_dagster.warehouse.schema.models import PipelineExecution as E
    from timbel_dagster.warehouse.schema.models import StageExecution as S

    executions = select(
        E.id,
        P.name,
        E.source,
        E.external_id,
        E.sequence,
        E.status,
        E.started_at,
        E.duration,
        E.queue_seconds,
        E.commit_sha,
    ).join(P, P.id == E.pipeline_id)
    stages = (
        select(
            S.execution_id,
            P.name,
            S.name,
            S.parent_name,
            S.position,
            S.status,
            S.started_at,
            S.duration,
            S.queue_seconds,
            S.attempt,
        )
        .join(E, E.id == S.execution_id)
        .join(P, P.id == E.pipeline_id)
    )
    if since is not None:
        executions = executions.where(E.started_at >= since)
        stages = stages.where(E.started_at >= since)
    executions = executions.order_by(P.name, E.started_at, E.sequence, E.id)
    stages = stages.order_by(P.name, E.started_at, S.execution_id, S.position, S.attempt)

    execution_frame = pd.DataFrame(connection.execute(executions).all(), columns=EXECUTION_COLUMNS)
    stage_frame = pd.DataFrame(connection.execute(stages).all(), columns=STAGE_COLUMNS)
    for frame in (execution_frame, stage_frame):
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return execution_frame, stage_frame
