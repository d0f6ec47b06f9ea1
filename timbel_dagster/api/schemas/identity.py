"""Who the caller is."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Me(BaseModel):
    """The principal the request's token stands for."""

    user: str
    role: str = Field(description="viewer, developer, team_lead, operations or admin")
    kind: str = Field(description="person or service")
    teams: list[str]
    tenants: list[str]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "user": "dana",
                    "role": "team_lead",
                    "kind": "person",
                    "teams": ["shop"],
                    "tenants": ["acme"],
                }
            ]
        }
    }
