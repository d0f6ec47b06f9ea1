"""Monthly usage and cost per tenant."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TenantCost(BaseModel):
    month: str = Field(description="YYYY-MM (UTC).")
    tenant: str
    source: str = Field(description="Rows of different sources are never added together.")
    managed: bool = Field(description="A tenant provisioned by Timbel.")
    cost_usd: float
    cpu_cost_usd: float
    memory_cost_usd: float
    storage_cost_usd: float
    cpu_core_hours: float
    memory_gib_hours: float
    cpu_charged_core_hours: float = Field(description="The larger of request and usage.")
    memory_charged_gib_hours: float


class CostReport(BaseModel):
    """`timbel tenant report --json`: one row per month, tenant and source, by month and
    then cost, most expensive first."""

    items: list[TenantCost]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "month": "2026-11",
                            "tenant": "acme",
                            "source": "prometheus",
                            "managed": True,
                            "cost_usd": 412.5,
                            "cpu_cost_usd": 301.2,
                            "memory_cost_usd": 98.3,
                            "storage_cost_usd": 13.0,
                            "cpu_core_hours": 5210.4,
                            "memory_gib_hours": 20480.0,
                            "cpu_charged_core_hours": 6000.0,
                            "memory_charged_gib_hours": 24576.0,
                        }
                    ]
                }
            ]
        }
    }
