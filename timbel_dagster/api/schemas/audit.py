"""Audit log events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class AuditEventItem(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]
    prev_hash: str = Field(description="The previous event's hash (the chain).")
    hash: str


class AuditPage(BaseModel):
    """Events newest first (by id)."""

    items: list[AuditEventItem]
    next_cursor: str | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "id": 4120,
                            "at": "2026-12-04T09:20:01.000000+00:00",
                            "actor": "dana",
                            "action": "deploy.approve",
                            "target": "request 17",
                            "details": {"reason": "tests green"},
                            "prev_hash": "9f2c...",
                            "hash": "3ab1...",
                        }
                    ],
                    "next_cursor": "WzQxMjBd",
                }
            ]
        }
    }
