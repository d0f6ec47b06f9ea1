"""Tenants: a namespace with quota, users and clusters."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

_EXAMPLE = {
    "name": "acme",
    "status": "provisioned",
    "cpu_cores": 8.0,
    "memory_bytes": 17179869184.0,
    "users": ["dana", "lee"],
    "clusters": ["seoul-dev-01"],
    "created_by": "ops",
    "created_at": "2026-11-02T08:00:00Z",
    "updated_at": "2026-11-20T10:30:00Z",
}


class TenantOut(BaseModel):
    """A tenant, its quota, its users (tenant_members) and its clusters."""

    name: str
    status: str = Field(description="provisioned or deleted")
    cpu_cores: float = Field(description="The CPU quota, in cores.")
    memory_bytes: float = Field(description="The memory quota, in bytes.")
    users: list[str]
    clusters: list[str]
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE]}}


class TenantList(BaseModel):
    """The tenants the caller may see, by name."""

    items: list[TenantOut]

    model_config = {"json_schema_extra": {"examples": [{"items": [_EXAMPLE]}]}}
