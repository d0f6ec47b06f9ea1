"""GET /api/v1/me: who the token stands for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from timbel_dagster.api.deps import signed_in
from timbel_dagster.api.errors import problems
from timbel_dagster.api.schemas.identity import Me
from timbel_dagster.identity.principal import Principal

router = APIRouter(tags=["identity"])


@router.get(
    "/me",
    summary="The caller: user, role, teams and tenants",
    response_model=Me,
    responses=problems(401, 429),
)
def me(who: Annotated[Principal, Depends(signed_in)]) -> Me:
    """Any valid token may ask who it stands for; no action of the policy table is needed."""
    return Me(
        user=who.user, role=who.role, kind=who.kind, teams=list(who.teams),
        tenants=list(who.tenants),
    )  # fmt: skip
