"""SLO status: what `timbel slo status --json` prints."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BurnRates(BaseModel):
    """Burn rate per window: (bad / valid) / (1 - objective); null without traffic."""

    model_config = {"populate_by_name": True}

    m5: float | None = Field(alias="5m")
    m30: float | None = Field(alias="30m")
    h1: float | None = Field(alias="1h")
    h2: float | None = Field(alias="2h")
    h6: float | None = Field(alias="6h")
    d1: float | None = Field(alias="1d")
    d3: float | None = Field(alias="3d")


class SloStatusOut(BaseModel):
    service: str
    slo: str
    kind: str = Field(description="availability, latency, pipeline_success or pipeline_duration.")
    source: str = Field(description="prometheus or warehouse.")
    objective: float = Field(description="A fraction: 0.995 is 99.5 %.")
    window: str = Field(description="The SLO's rolling window, e.g. 30d.")
    evaluated_at: str
    good: float = Field(description="Good events in the window.")
    total: float = Field(description="Valid events in the window.")
    sli: float | None = Field(description="good / total; null without traffic.")
    error_budget_remaining: float | None = Field(
        description="1 untouched, 0 spent, below 0 overspent; null without traffic."
    )
    burn_rates: BurnRates
    alert: str | None = Field(description="page, ticket or null: the burn-rate condition held.")


class SloList(BaseModel):
    """The latest status of each SLO, by service and name."""

    items: list[SloStatusOut]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "service": "checkout",
                            "slo": "availability",
                            "kind": "availability",
                            "source": "prometheus",
                            "objective": 0.999,
                            "window": "30d",
                            "evaluated_at": "2026-12-05T12:05:00+00:00",
                            "good": 5750400.0,
                            "total": 5760000.0,
                            "sli": 0.99833,
                            "error_budget_remaining": -0.6667,
                            "burn_rates": {
                                "5m": 20.0,
                                "30m": 20.0,
                                "1h": 20.0,
                                "2h": 15.0,
                                "6h": 11.67,
                                "1d": 3.67,
                                "3d": 1.89,
                            },
                            "alert": "page",
                        }
                    ]
                }
            ]
        }
    }
