"""Inbound webhook deliveries: recorded once, then taken by the sensor that acts on them.

A sender retries a delivery it thinks failed (GitLab resends the same
`X-Gitlab-Webhook-UUID`, the registry the same event id), so the row is inserted with
`ON CONFLICT (source, delivery_key) DO NOTHING`: a replay writes nothing and says so. The
webhook routes never act; the sensors read `pending` rows and mark them `taken` with the run
key they requested, in the sensor's tick.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from timbel_dagster.records.delivery import CIRead, ExecutionRecord
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.identity import WebhookDelivery
from timbel_dagster.warehouse.schema.models import PipelineExecution
from timbel_dagster.warehouse.store.ingest import store_ci
from timbel_dagster.warehouse.store.loaders import execution_id
from timbel_dagster.warehouse.store.upsert import _dialect_insert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# Execution statuses after which a pipeline does not change again.
FINISHED = ("success", "failed", "aborted")
# The audit log names a webhook's sender as its actor: no user is behind a GitLab event.
ACTOR_PREFIX = "webhook:"


@dataclass(frozen=True)
class Delivery:
    """One delivery as a sender made it, before it is stored."""

    source: str  # gitlab | jenkins | registry | slack
    key: str  # the sender's id for it: a retry carries the same one
    event: str | None
    subject: str | None  # project, job or repository:tag the sensors act on
    payload: dict[str, Any]
    status: str = "pending"


def record_delivery(connection: Connection, delivery: Delivery) -> uuid.UUID | None:
    """Store `delivery` and audit it on the caller's connection; None when the same
    (source, key) was recorded before (a replay: nothing is written)."""
    insert = _dialect_insert(connection)
    now = dt.datetime.now(dt.UTC)
    delivery_id = uuid.uuid4()
    statement = (
        insert(WebhookDelivery.__table__)
        .values(
            id=delivery_id,
            source=delivery.source,
            delivery_key=delivery.key[:256],
            event=delivery.event,
            subject=delivery.subject[:512] if delivery.subject else None,
            received_at=now,
            payload=delivery.payload,
            status=delivery.status,
            taken_at=now if delivery.status != "pending" else None,
        )
        .on_conflict_do_nothing(index_elements=["source", "delivery_key"])
        # RETURNING, not rowcount: the warehouse's psycopg connections report -1 for it.
        .returning(WebhookDelivery.__table__.c.id)
    )
    if connection.execute(statement).scalar_one_or_none() is None:
        return None
    append_event(
        connection,
        actor=ACTOR_PREFIX + delivery.source,
        action="webhook.received",
        target=delivery.subject,
        details={"event": delivery.event, "delivery_key": delivery.key[:256]},
    )
    return delivery_id


def _not_regressing(connection: Connection, source: str, read: CIRead) -> CIRead:
    """`read` without the executions whose stored row has finished while the record has not:
    a sender delivers out of order (a late `running` after `success`), and a finished
    pipeline does not start again."""
    records = [r for r in read.executions or [] if isinstance(r, ExecutionRecord)]
    ids = {execution_id(source, r.pipeline, r.external_id): r for r in records}
    if not ids:
        return read
    table = PipelineExecution.__table__
    finished = set(
        connection.execute(
            select(table.c.id).where(table.c.id.in_(list(ids))).where(table.c.status.in_(FINISHED))
        ).scalars()
    )
    kept = [r for i, r in ids.items() if i not in finished or r.status in FINISHED]
    return CIRead(pipelines=read.pipelines, executions=kept)


def receive(engine: Engine, delivery: Delivery, read: CIRead | None = None) -> bool:
    """Record `delivery` and store what it already says (`read`: a GitLab pipeline's
    execution row, through the ingestion's own `store_ci`) in one transaction; False for a
    replay, which stores nothing."""
    with engine.begin() as connection:
        if record_delivery(connection, delivery) is None:
            return False
        if read is not None:
            store_ci(
                connection, delivery.source, _not_regressing(connection, delivery.source, read)
            )
    return True


def pending_deliveries(
    connection: Connection, sources: Iterable[str], limit: int = 200
) -> list[dict[str, Any]]:
    """The oldest pending deliveries of `sources` (the index on (source, status, received_at)
    serves it)."""
    query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.source,
            WebhookDelivery.event,
            WebhookDelivery.subject,
            WebhookDelivery.payload,
            WebhookDelivery.received_at,
        )
        .where(WebhookDelivery.source.in_(list(sources)))
        .where(WebhookDelivery.status == "pending")
        .order_by(WebhookDelivery.received_at, WebhookDelivery.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in connection.execute(query)]


def take_deliveries(
    connection: Connection,
    ids: Sequence[uuid.UUID],
    run_key: str | None,
    status: str = "taken",
) -> int:
    """Mark pending deliveries `status` (taken: a run was requested under `run_key`;
    ignored: nothing to do); returns how many were still pending."""
    if not ids:
        return 0
    statement = (
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(list(ids)))
        .where(WebhookDelivery.status == "pending")
        .values(status=status, taken_at=dt.datetime.now(dt.UTC), run_key=run_key)
        .returning(WebhookDelivery.id)
    )
    return len(connection.execute(statement).all())


def stored_payload(connection: Connection, source: str, key: str) -> dict[str, Any] | None:
    """What was recorded of the delivery `(source, key)`, or None when there is none."""
    query = select(WebhookDelivery.payload).where(
        WebhookDelivery.source == source, WebhookDelivery.delivery_key == key[:256]
    )
    return connection.execute(query).scalar_one_or_none()


def forget_fields(connection: Connection, source: str, key: str, *fields: str) -> None:
    """Drop `fields` from the recorded payload of delivery `(source, key)` (a Slack
    `response_url` once used: whoever holds one may post to the channel for 30 minutes)."""
    payload = stored_payload(connection, source, key)
    if payload is None or not any(field in payload for field in fields):
        return
    kept = {name: value for name, value in payload.items() if name not in fields}
    connection.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.source == source, WebhookDelivery.delivery_key == key[:256])
        .values(payload=kept)
    )
