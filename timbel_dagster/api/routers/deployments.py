"""/api/v1/deployments/requests: request, list, status, approve, reject, fast-track, review
and the risk assessment; each route calls what `timbel deploy` calls (`deploy.service`,
`deploy.requests`, `deploy.lookup`), so the approval chain, the team check, the security gate
and the audit events are the domain's, not the API's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import forbid, require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, ApiError, problems
from timbel_dagster.api.pagination import number_cursor, read_number_cursor
from timbel_dagster.api.schemas.deployments import (
    ApproveIn,
    DeploymentRequestIn,
    DeploymentRequestOut,
    DeploymentRequestPage,
    FastTrackIn,
    RejectIn,
    ReviewIn,
    RiskAssessment,
)
from timbel_dagster.deploy import lookup
from timbel_dagster.deploy.lookup import NotPermittedError, RequestError
from timbel_dagster.deploy.requests import Requests
from timbel_dagster.deploy.risk_view import risk_in_words
from timbel_dagster.deploy.service import request_deployment, requests_from_settings
from timbel_dagster.identity.authorize import Target, may
from timbel_dagster.identity.policy import ALL_SCOPES
from timbel_dagster.identity.principal import Principal
from timbel_dagster.warehouse.people.membership import owner_team
from timbel_dagster.warehouse.schema.deploy import REQUEST_STATUSES

MAX_LIMIT = 200
State = Literal[REQUEST_STATUSES]  # type: ignore[valid-type]
# Request numbers are the warehouse's INTEGER column: a larger one is no request, and must
# be a 422, not a database error (found by the contract test).
MAX_NUMBER = 2**31 - 1
Number = Annotated[int, Path(ge=1, le=MAX_NUMBER, description="The request's number (#42 is 42).")]
# Said when an approval comes without one: the domain records a reason with every step.
NO_REASON = "approved through the API without a comment"
ERRORS_WRITE = (400, 401, 403, 404, 409, 422)

router = APIRouter(prefix="/deployments/requests", tags=["deployments"])


def _requests(request: Request) -> Requests:
    return requests_from_settings(request.app.state.settings, request.app.state.engine)


Service = Annotated[Requests, Depends(_requests)]


def _out(request: dict[str, Any], steps: list[dict[str, Any]]) -> DeploymentRequestOut:
    fields = set(DeploymentRequestOut.model_fields) - {"id", "steps"}
    return DeploymentRequestOut(
        id=str(request["id"]),
        steps=steps,
        **{k: request.get(k) for k in fields if k in request},
    )


def _refusal(error: RequestError) -> ApiError:
    """The domain refused (and audited it): 403 when it is about who acts, else 409."""
    if isinstance(error, NotPermittedError):
        return ApiError(403, str(error), kind="forbidden")
    return ApiError(409, str(error), kind="conflict")


def _visible(
    http: Request, engine: Engine, who: Principal, number: int, action: str
) -> dict[str, Any]:
    """Request `number` if `who` may take `action` on it: 404 when there is none, 403
    (audited) when the service's tenant or owning team is not theirs."""
    with engine.connect() as connection:
        try:
            found = lookup.find(connection, str(number))
        except RequestError:
            raise ApiError(404, f"no deployment request #{number}", kind="not-found") from None
        target = Target(
            team=owner_team(connection, found["service"]),
            tenant=lookup.tenant_of(connection, found["service"]),
        )
    decision = may(who, action, target)
    if not decision.allowed:
        raise forbid(http, engine, who, action, decision.reason)
    return found


def _status(requests: Requests, number: int) -> DeploymentRequestOut:
    status = requests.status(str(number))
    return _out(status, status["steps"])


@router.post(
    "",
    status_code=201,
    summary="Request a deployment of an image of a service to an environment group",
    response_model=DeploymentRequestOut,
    responses=problems(*ERRORS_WRITE),
)
def create_request(
    body: DeploymentRequestIn,
    who: Annotated[Principal, Depends(require("deploy.request"))],
    http: Request,
    requests: Service,
) -> DeploymentRequestOut:
    """What `timbel deploy request` does: the request (audited as `deploy.request`), its
    approval chain for the group, and, when it is pending, the risk advisor's assessment for
    its approvers (`risk_note` says why there is none). A group without a chain is approved
    at once if the security gate lets the image pass. An unknown service, image or group is a
    409 naming it (audited as `deploy.request.refused`)."""
    try:
        made = request_deployment(
            requests, http.app.state.settings, who.user, body.service, body.image, body.group,
            body.reason,
        )  # fmt: skip
    except RequestError as error:
        raise _refusal(error) from None
    # As stored (the domain's answer lacks the columns it left at their defaults).
    return _status(requests, made["number"]).model_copy(update={"risk_note": made.get("risk_note")})


@router.get(
    "",
    summary="List deployment requests, newest first, a page at a time",
    response_model=DeploymentRequestPage,
    responses=problems(*ERRORS_READ),
)
def list_requests(
    who: Annotated[Principal, Depends(require("deploy.read"))],
    requests: Service,
    state: Annotated[State | None, Query(description="Only requests in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> DeploymentRequestPage:
    """The list `timbel deploy list` prints, from the same query, with each request's steps.
    A pending request past its expiry is listed as expired (the read writes nothing;
    `request_expiry_sensor` records it). A user who is not operations or admin sees the
    requests of their tenants' services and of services with no tenant."""
    tenants = None if who.role in ALL_SCOPES else who.tenants
    before = read_number_cursor(cursor) if cursor else None
    with requests.engine.connect() as connection:
        rows = lookup.list_requests(
            connection, state, limit + 1, before=before, tenants=tenants, now=requests.clock()
        )
        page, more = rows[:limit], len(rows) > limit
        items = [_out(row, requests.steps(connection, row["id"])) for row in page]
    return DeploymentRequestPage(
        items=items, next_cursor=number_cursor(page[-1]["number"]) if more else None
    )


@router.get(
    "/{number}",
    summary="A deployment request and its approval steps",
    response_model=DeploymentRequestOut,
    responses=problems(401, 403, 404, 422),
)
def get_request(
    number: Number,
    who: Annotated[Principal, Depends(require("deploy.read"))],
    http: Request,
    engine: Annotated[Engine, Depends(warehouse_engine)],
    requests: Service,
) -> DeploymentRequestOut:
    """What `timbel deploy status` shows: the request and each step of its chain, who decided
    it and why (past its expiry, a pending request is shown expired)."""
    _visible(http, engine, who, number, "deploy.read")
    return _status(requests, number)


@router.get(
    "/{number}/risk",
    summary="The risk assessment of a request: probability, reasons in words, similar ones",
    response_model=RiskAssessment,
    responses=problems(401, 403, 404, 422),
)
def get_risk(
    number: Number,
    who: Annotated[Principal, Depends(require("deploy.read"))],
    http: Request,
    engine: Annotated[Engine, Depends(warehouse_engine)],
) -> RiskAssessment:
    """The assessment made when the request was made (what `timbel deploy request` prints
    under it): the probability of failure and the advice, each top reason in words, the
    confidence and what it rests on, and the most similar past deployments with their
    outcomes. 404 when the request has none (no model yet, or its image's commit is
    unknown)."""
    found = _visible(http, engine, who, number, "deploy.read")
    try:
        return RiskAssessment(**risk_in_words(number, found["risk"]))
    except LookupError as error:
        raise ApiError(404, str(error), kind="not-found") from None


def _decide(http: Request, engine: Engine, who: Principal, number: int, action: str, change):
    """Check the scope of `action` on request `number`, then make the domain's `change`."""
    _visible(http, engine, who, number, action)
    try:
        change()
    except RequestError as error:
        raise _refusal(error) from None


@router.post(
    "/{number}/approve",
    summary="Approve the current step of a request's chain",
    response_model=DeploymentRequestOut,
    responses=problems(*ERRORS_WRITE),
)
def approve(
    number: Number,
    who: Annotated[Principal, Depends(require("deploy.approve"))],
    http: Request,
    engine: Annotated[Engine, Depends(warehouse_engine)],
    requests: Service,
    body: Annotated[ApproveIn | None, Body()] = None,
) -> DeploymentRequestOut:
    """`timbel deploy approve`: the caller decides the current step if it is their role's
    (admin any), they did not make the request nor decide another step, and, for a team
    lead, their team owns the service; the last approval passes the security gate. A team
    lead of another team gets 403 (audited, nothing changed); a request that is not pending
    or expired gets 409."""
    reason = (body.reason if body else None) or NO_REASON
    _decide(
        http,
        engine,
        who,
        number,
        "deploy.approve",
        lambda: requests.decide(who.user, str(number), True, reason),
    )
    return _status(requests, number)


@router.post(
    "/{number}/reject",
    summary="Reject a request at its current step (a reason is required)",
    response_model=DeploymentRequestOut,
    responses=problems(*ERRORS_WRITE),
)
def reject(
    number: Number,
    body: RejectIn,
    who: Annotated[Principal, Depends(require("deploy.reject"))],
    http: Request,
    engine: Annotated[Engine, Depends(warehouse_engine)],
    requests: Service,
) -> DeploymentRequestOut:
    """`timbel deploy reject`: the same checks as approving; without a reason, 422 on
    `["body", "reason"]`."""
    _decide(
        http,
        engine,
        who,
        number,
        "deploy.reject",
        lambda: requests.decide(who.user, str(number), False, body.reason),
    )
    return _status(requests, number)


@router.post(
    "/{number}/fast-track",
    summary="Approve in an emergency, skipping the chain (a review is due afterwards)",
    response_model=DeploymentRequestOut,
    responses=problems(*ERRORS_WRITE),
)
def fast_track(
    number: Number,
    body: FastTrackIn,
    who: Annotated[Principal, Depends(require("deploy.fast_track"))],
    http: Request,
    engine: Annotated[Engine, Depends(warehouse_engine)],
    requests: Service,
) -> DeploymentRequestOut:
    """`timbel deploy fast-track`: a team lead of the owning team, operations or admin
    approves every pending step at once, naming the incident; the security gate still
    applies and every approver of the chain is told."""
    _decide(
        http,
        engine,
        who,
        number,
        "deploy.fast_track",
        lambda: requests.fast_track(who.user, str(number), body.reason, body.incident),
    )
    return _status(requests, number)


@router.post(
    "/{number}/review",
    summary="Record the mandatory review of a fast-tracked request",
    response_model=DeploymentRequestOut,
    responses=problems(*ERRORS_WRITE),
)
def review(
    number: Number,
    body: ReviewIn,
    who: Annotated[Principal, Depends(require("deploy.review"))],
    http: Request,
    engine: Annotated[Engine, Depends(warehouse_engine)],
    requests: Service,
) -> DeploymentRequestOut:
    """`timbel deploy review`: by a team lead of the owning team, operations or admin other
    than the requester; 409 when the request was not fast-tracked or is reviewed already."""
    _decide(
        http,
        engine,
        who,
        number,
        "deploy.review",
        lambda: requests.review(who.user, str(number), body.note),
    )
    return _status(requests, number)
