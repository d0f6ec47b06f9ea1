"""SLO status history: one row per SLO and evaluation (the `slo/slo_status` asset).

Each row is what the SLO looked like at `evaluated_at`: the SLI and error budget over its
window, and the burn rate over each window the multi-window alert policy reads. Rows are
never updated, so the table is the SLO's history; the burn-rate alert rules read the latest
row of each SLO.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Float, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from timbel_dagster.warehouse.schema.models import Base

# The burn-rate windows a row holds, as column suffixes (`burn_5m` ... `burn_3d`); the same
# windows as slo/budget.BURN_WINDOWS, which a test keeps equal.
BURN_COLUMNS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


class SloStatus(Base):
    __tablename__ = "slo_status"
    __table_args__ = (
        UniqueConstraint("service", "slo", "evaluated_at"),
        Index(None, "evaluated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    service: Mapped[str] = mapped_column(String(128))
    slo: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))  # availability | latency | pipeline_*
    source: Mapped[str] = mapped_column(String(16))  # prometheus | warehouse
    objective: Mapped[float] = mapped_column(Float)  # a fraction: 0.995
    window_seconds: Mapped[int] = mapped_column(Integer)
    evaluated_at: Mapped[dt.datetime]
    # Over the SLO's window; None without valid events (no traffic is not 100 %).
    good: Mapped[float] = mapped_column(Float)
    total: Mapped[float] = mapped_column(Float)
    sli: Mapped[float | None] = mapped_column(Float)
    budget_remaining: Mapped[float | None] = mapped_column(Float)  # 1 untouched, < 0 overspent
    burn_5m: Mapped[float | None] = mapped_column(Float)
    burn_30m: Mapped[float | None] = mapped_column(Float)
    burn_1h: Mapped[float | None] = mapped_column(Float)
    burn_2h: Mapped[float | None] = mapped_column(Float)
    burn_6h: Mapped[float | None] = mapped_column(Float)
    burn_1d: Mapped[float | None] = mapped_column(Float)
    burn_3d: Mapped[float | None] = mapped_column(Float)
    # The most urgent alert condition holding at evaluation: page, ticket or None.
    alert: Mapped[str | None] = mapped_column(String(8))
