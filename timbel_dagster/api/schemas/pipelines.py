"""Pipelines and their duration statistics."""

from __future__ import annotations

from pydantic import BaseModel, Field

from timbel_dagster.api.schemas.executions import Percentiles

_PIPELINE_EXAMPLE = {
    "id": "0b7e3c1a-92f4-4d0e-8a51-6f2c9d4e1b70",
    "source": "gitlab",
    "ci_system": "gitlab",
    "name": "shop/checkout",
    "service": "checkout",
    "tenant": "acme",
    "repository": "https://gitlab.example.com/shop/checkout.git",
    "default_branch": "main",
    "url": "https://gitlab.example.com/shop/checkout",
}


class PipelineItem(BaseModel):
    id: str
    source: str
    ci_system: str = Field(description="jenkins or gitlab")
    name: str = Field(description="Jenkins full name or GitLab project path.")
    service: str | None
    tenant: str | None = Field(description="The tenant of its service (service_owners).")
    repository: str | None
    default_branch: str | None
    url: str | None


class PipelinePage(BaseModel):
    """One page of pipelines by source and name."""

    items: list[PipelineItem]
    next_cursor: str | None

    model_config = {
        "json_schema_extra": {"examples": [{"items": [_PIPELINE_EXAMPLE], "next_cursor": None}]}
    }


class PipelineStats(BaseModel):
    """`timbel executions stats` for one pipeline: its finished executions (success, failed,
    aborted), success rate and duration percentiles; null percentiles before any duration."""

    pipeline: PipelineItem
    stats: Percentiles | None = Field(description="Null when it has no finished execution.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "pipeline": _PIPELINE_EXAMPLE,
                    "stats": {
                        "pipeline": "shop/checkout",
                        "executions": 412,
                        "success_rate": 0.9126,
                        "p50_seconds": 402.0,
                        "p90_seconds": 611.5,
                        "p99_seconds": 980.2,
                    },
                }
            ]
        }
    }
