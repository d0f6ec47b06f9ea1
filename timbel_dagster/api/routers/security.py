"""/api/v1/security: open vulnerability findings (paged) and the deploy gate's verdict.

Findings are not tenant scoped: an image has no tenant (one image may serve several
services), so every role with `security.read` sees them all (docs/api.md says so)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, ApiError, problems
from timbel_dagster.api.guard import invalid
from timbel_dagster.api.pagination import UUID, page, read_cursor
from timbel_dagster.api.schemas.security import Finding, FindingPage, GateVerdict
from timbel_dagster.identity.principal import Principal
from timbel_dagster.records.trivy import SEVERITIES
from timbel_dagster.security.findings_page import NeverScannedError, open_findings
from timbel_dagster.security.policy import check_image, load_policy

Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
Group = Literal["dev", "staging", "prod"]

router = APIRouter(tags=["security"])


@router.get(
    "/security/findings",
    summary="Open vulnerability findings, a page at a time",
    response_model=FindingPage,
    responses=problems(*ERRORS_READ, 404),
)
def findings(
    _who: Annotated[Principal, Depends(require("security.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    image: Annotated[
        str | None,
        Query(
            description="One image (tag or digest): its newest scan's findings, as the gate "
            "judges them."
        ),
    ] = None,
    severity: Annotated[Severity | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Findings per page.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> FindingPage:
    """Findings still open (not fixed by a later scan), by id. 404 when `image` was never
    scanned."""
    after: uuid.UUID | None = read_cursor(cursor, UUID)[0] if cursor else None
    with warehouse.connect() as connection:
        try:
            rows = open_findings(connection, image, severity, after, limit + 1)
        except NeverScannedError as error:
            raise ApiError(404, str(error), kind="not-found") from None
        except ValueError as error:
            raise invalid(("query", "image"), str(error)) from None
    items, next_cursor = page(rows, limit, lambda row: (row["id"],))
    return FindingPage(items=[Finding(**row) for row in items], next_cursor=next_cursor)


@router.get(
    "/security/gate",
    summary="Would the security policy let an image be deployed to a group?",
    response_model=GateVerdict,
    responses=problems(*ERRORS_READ),
)
def gate(
    request: Request,
    _who: Annotated[Principal, Depends(require("security.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    image: Annotated[str, Query(min_length=1, description="The image, by tag or digest.")],
    group: Annotated[Group, Query(description="The environment group.")] = "prod",
) -> GateVerdict:
    """The verdict the approval of a deployment request gets (`security.policy.check_image`
    with TIMBEL_SECURITY_POLICY_FILE, else the built-in policy), as `timbel scan gate
    --json` prints it. A tag is resolved through the warehouse's `registry_images`; the API
    does not ask the registry itself (no HTTP call inside a request's read)."""
    policy = load_policy(request.app.state.settings.timbel_security_policy_file)
    with warehouse.connect() as connection:
        try:
            result = check_image(connection, image, group, policy)
        except ValueError as error:
            raise invalid(("query", "image"), str(error)) from None
    return GateVerdict(**result.to_dict())
