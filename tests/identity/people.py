"""Users for the identity tests, stored the way ingestion stores them."""

from __future__ import annotations

from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.models import User
from timbel_dagster.warehouse.store.upsert import bulk_upsert

PEOPLE = [
    ("admin", "admin", "platform"),
    ("ops", "operations", "platform"),
    ("lead", "team_lead", "shop"),
    ("dev", "developer", "shop"),
    ("viewer", "viewer", "shop"),
]


def store_people(url: str, people: list[tuple[str, str, str | None]] = PEOPLE) -> None:
    rows = [
        {"id": stable_id("users", name), "source": "test", "name": name, "display_name": name,
         "email": f"{name}@example.com", "role": role, "team": team, "slack_id": None}
        for name, role, team in people
    ]  # fmt: skip
    with get_engine(url).begin() as connection:
        bulk_upsert(connection, User.__table__, rows, ["name"])
