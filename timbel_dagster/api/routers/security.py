"""/api/v1/security: open vulnerability findings (paged), one finding, and the deploy gate's
verdict.

Tenant scoped by image (`warehouse.read.scope`, `security.findings_page`): an image belongs
to the tenants of the services that deployed it or asked for it (a deployment or a
deployment request naming it). A caller who is not operations or admin sees the findings
and the verdict of those images only; an image no service of a tenant has named is theirs
to see only when they see every tenant. A finding or an image of another tenant answers
404 exactly as an unknown one does (same status, same message, nothing audited): an image
reference is easy to guess, and a 403 would confirm what another tenant runs and that it
was scanned. (A detail of another tenant's execution is a 403 naming the tenant: that row
has one tenant; an image may have several.)"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, problems
from timbel_dagster.api.guard import invalid, not_found
from timbel_dagster.api.pagination import UUID, page, read_cursor
from timbel_dagster.api.schemas.security import Finding, FindingPage, GateVerdict
from timbel_dagster.identity.principal import Principal
from timbel_dagster.identity.scope import visible_tenants
from timbel_dagster.records.trivy import SEVERITIES
from timbel_dagster.security.findings_page import (
    InvisibleImageError,
    NeverScannedError,
    finding,
    image_visible,
    open_findings,
)
from timbel_dagster.security.policy import check_image, load_policy

Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
Group = Literal["dev", "staging", "prod"]
ACTION = "security.read"

router = APIRouter(tags=["security"])


@router.get(
    "/security/findings",
    summary="Open vulnerability findings, a page at a time",
    response_model=FindingPage,
    responses=problems(*ERRORS_READ, 404),
)
def findings(
    who: Annotated[Principal, Depends(require(ACTION))],
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
    """Findings still open (not fixed by a later scan), by id, of the images the caller's
    tenants' services deployed or requested (operations and admin: every image). 404 when
    `image` was never scanned, or is not one the caller may see."""
    after: uuid.UUID | None = read_cursor(cursor, UUID)[0] if cursor else None
    tenants = visible_tenants(who, ACTION)
    with warehouse.connect() as connection:
        try:
            rows = open_findings(connection, image, severity, after, limit + 1, tenants)
        except (InvisibleImageError, NeverScannedError) as error:
            raise not_found(str(error)) from None
        except ValueError as error:
            raise invalid(("query", "image"), str(error)) from None
    items, next_cursor = page(rows, limit, lambda row: (row["id"],))
    return FindingPage(items=[Finding(**row) for row in items], next_cursor=next_cursor)


@router.get(
    "/security/findings/{id}",
    summary="One vulnerability finding, open or fixed",
    response_model=Finding,
    responses=problems(*ERRORS_READ, 404),
)
def finding_detail(
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    ident: Annotated[uuid.UUID, Path(alias="id", description="The finding's id.")],
) -> Finding:
    """The finding with `fixed_at` (null while open). 404 for an unknown id and for a
    finding of an image the caller may not see alike."""
    with warehouse.connect() as connection:
        found = finding(connection, ident, visible_tenants(who, ACTION))
    if found is None:
        raise not_found(f"no finding with id {str(ident)!r}")
    return Finding(**found)


@router.get(
    "/security/gate",
    summary="Would the security policy let an image be deployed to a group?",
    response_model=GateVerdict,
    responses=problems(*ERRORS_READ, 404),
)
def gate(
    request: Request,
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    image: Annotated[str, Query(min_length=1, description="The image, by tag or digest.")],
    group: Annotated[Group, Query(description="The environment group.")] = "prod",
) -> GateVerdict:
    """The verdict the approval of a deployment request gets (`security.policy.check_image`
    with TIMBEL_SECURITY_POLICY_FILE, else the built-in policy), as `timbel scan gate
    --json` prints it. A tag is resolved through the warehouse's `registry_images`; the API
    does not ask the registry itself (no HTTP call inside a request's read). 404 for an
    image the caller may not see (operations and admin see every image, scanned or not)."""
    policy = load_policy(request.app.state.settings.timbel_security_policy_file)
    with warehouse.connect() as connection:
        try:
            if not image_visible(connection, image, visible_tenants(who, ACTION)):
                raise not_found(str(InvisibleImageError(image)))
            result = check_image(connection, image, group, policy)
        except ValueError as error:
            raise invalid(("query", "image"), str(error)) from None
    return GateVerdict(**result.to_dict())
