"""What ingestion could not parse: records a source sent, kept with the reason and payload."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base


class IngestionReject(Base):
    """One record a source sent that could not be parsed at all (a build, a stage list, a
    pipeline, a job), stored once however often it is read again.

    `key` is the record's own id within its pipeline (a build number, a pipeline or job id) or,
    when even that cannot be read, a digest of its payload (`sha1:...`). `sequence` is the
    execution the record stands for when it is known, so that the build sensors' marks count
    it as handled. `payload` is the record's JSON as text, not JSONB: PostgreSQL would
    normalise its numbers and key order, and a reject keeps what the server sent.
    """

    __tablename__ = "ingestion_rejects"
    __table_args__ = (
        UniqueConstraint("source", "kind", "pipeline", "key"),
        Index(None, "source", "pipeline", "sequence"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))  # jenkins | gitlab | ...
    kind: Mapped[str] = mapped_column(String(32))  # build | stages | pipeline | job
    pipeline: Mapped[str] = mapped_column(String(512))  # '' when the record names none
    key: Mapped[str] = mapped_column(String(128))
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
