"""Rollbacks and their outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class RollbackItem(BaseModel):
    id: str
    service: str
    tenant: str | None = Field(description="The tenant of the service (service_owners).")
    cluster: str
    namespace: str
    from_image: str
    from_revision: str | None
    to_image: str | None
    to_revision: str | None
    trigger: str = Field(description="The health sensor, a rollout strategy, or a person.")
    reason: str
    status: str = Field(description="The outcome: planned, done, failed or dry_run.")
    dry_run: bool
    details: dict[str, Any]
    created_at: dt.datetime
    finished_at: dt.datetime | None


class RollbackPage(BaseModel):
    """Rollbacks newest first."""

    items: list[RollbackItem]
    next_cursor: str | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "id": "3c9a7e21-5b0d-4f6e-8a12-9d0e1f2a3b4c",
                            "service": "checkout",
                            "tenant": "acme",
                            "cluster": "prod-01",
                            "namespace": "acme",
                            "from_image": "registry.example.com/shop/checkout:1.4.2",
                            "from_revision": "12",
                            "to_image": "registry.example.com/shop/checkout:1.4.1",
                            "to_revision": "11",
                            "trigger": "health",
                            "reason": "error rate 12% over 5m",
                            "status": "done",
                            "dry_run": False,
                            "details": {},
                            "created_at": "2026-12-04T09:30:00Z",
                            "finished_at": "2026-12-04T09:31:12Z",
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    }
