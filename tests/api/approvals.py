"""A warehouse with one pending prod request for the approvals page tests: shop-api, owned
by team shop (lead is its team lead), its image scanned clean, and the risk advisor's
assessment stored on it the way `timbel deploy request` stores it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from tests.deploy.known import know, own
from tests.identity.people import PEOPLE, store_people
from tests.security.findings import ALPINE_DIGEST, CLEAN, store
from timbel_dagster.deploy.chains import load_chains
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import ApprovalStep, DeploymentRequest

IMAGE = "registry.example.com/shop/api:1.4.2"
# A team lead and a developer of another team, beside the identity tests' people.
OTHERS = [("lead_pay", "team_lead", "payments"), ("dev_pay", "developer", "payments")]
RISK = {
    "probability": 0.31,
    "recommendation": "review",
    "confidence": 0.72,
    "model_version": 3,
    "reasons": [
        {"feature": "la", "value": 412.0, "contribution": 0.83},
        {"feature": "friday_or_weekend", "value": 1.0, "contribution": 0.21},
        {"feature": "recent_failure_rate", "value": 0.1, "contribution": -0.3},
    ],
    "similar": [
        {"id": "d1", "distance": 0.4, "outcome": "failed", "service": "shop-api",
         "environment": "prod", "started_at": "2026-10-30 14:02:00+00:00"},
        {"id": "d2", "distance": 0.6, "outcome": "succeeded", "service": "cart",
         "environment": "prod", "started_at": "2026-10-21 09:15:00+00:00"},
    ],
    "ships": {"commits": 7, "lines_added": 412.0, "lines_deleted": 35.0},
}  # fmt: skip


def pending_request(url: str) -> int:
    """Store the people, the service and its image, and make dev's request of IMAGE for prod
    (team lead, then operations); its number."""
    store_people(url, PEOPLE + OTHERS)
    know(url, "shop-api", {IMAGE: ALPINE_DIGEST})
    own(url, "shop-api", "shop", ["lead", "dev", "viewer"])
    own(url, "pay-api", "payments", ["lead_pay", "dev_pay"])
    store(url, CLEAN, IMAGE)  # scanned clean: the prod gate lets it pass
    engine = get_engine(url)
    requests = Requests(engine, load_chains(None), dt.timedelta(hours=72))
    made = requests.request("dev", "shop-api", IMAGE, "prod", "new checkout flow")
    with engine.begin() as connection:
        connection.execute(
            update(DeploymentRequest).where(DeploymentRequest.id == made["id"]).values(risk=RISK)
        )
    return made["number"]


def steps_of(engine, number: int) -> list[tuple[str, str | None]]:
    """(decision, decided_by) of each step of request `number`, in order."""
    with engine.connect() as connection:
        request_id = connection.execute(
            select(DeploymentRequest.id).where(DeploymentRequest.number == number)
        ).scalar_one()
        return connection.execute(
            select(ApprovalStep.decision, ApprovalStep.decided_by)
            .where(ApprovalStep.request_id == request_id)
            .order_by(ApprovalStep.position)
        ).all()


UNDECIDED = [("pending", None), ("pending", None)]
