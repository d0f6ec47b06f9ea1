"""/api/v1/notifications: one's own subscriptions (an admin: anyone's) and deliveries; the
functions of `timbel notify subscribe | unsubscribe | history`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, ApiError, problems
from timbel_dagster.api.guard import check, invalid, not_found
from timbel_dagster.api.schemas.notifications import (
    DeliveryList,
    DeliveryOut,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionMade,
    SubscriptionOut,
)
from timbel_dagster.identity.authorize import Target
from timbel_dagster.identity.principal import Principal
from timbel_dagster.notify import records, subscriptions
from timbel_dagster.warehouse.schema.ids import stable_id

ACTION = "notify.subscriptions"
MAX_LIMIT = 200
UserQuery = Annotated[
    str | None,
    Query(max_length=128, description="Whose (default: the caller's; another's: admin)."),
]
router = APIRouter(prefix="/notifications", tags=["notifications"])


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "user_name"} | {"user": row["user_name"]}


def _whose(request: Request, engine: Engine, who: Principal, user: str | None) -> str:
    user = user or who.user
    check(request, engine, who, ACTION, Target(owner=user))
    return user


@router.get(
    "/subscriptions",
    summary="The caller's notification subscriptions",
    response_model=SubscriptionList,
    responses=problems(*ERRORS_READ),
)
def list_subscriptions(
    request: Request,
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    user: UserQuery = None,
) -> SubscriptionList:
    """Active subscriptions and the unsubscribes kept as inactive rows."""
    rows = subscriptions.list_subscriptions(warehouse, _whose(request, warehouse, who, user))
    return SubscriptionList(items=[SubscriptionOut(**_out(r)) for r in rows])


@router.post(
    "/subscriptions",
    summary="Subscribe to notifications",
    status_code=201,
    response_model=SubscriptionMade,
    responses=problems(400, *ERRORS_READ),
)
def subscribe(
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    body: SubscriptionIn,
) -> SubscriptionMade:
    """As `timbel notify subscribe`: one's own, or anyone's for an admin (another user's is a
    403, audited `notify.subscribe.refused`). Audited `notify.subscribe`."""
    user = body.user or who.user
    try:
        changed = subscriptions.subscribe(
            warehouse, user, body.channel, body.event, body.rule, body.min_severity,
            actor=who.user,
        )  # fmt: skip
    except subscriptions.SubscriptionAccessError as error:
        raise ApiError(403, str(error), kind="forbidden") from None
    except LookupError as error:
        raise invalid(("body", "user"), str(error)) from None
    ident = stable_id("notification_subscriptions", user, body.channel, body.event, body.rule)
    row = subscriptions.find_subscription(warehouse, ident)
    assert row is not None  # just written
    return SubscriptionMade(**_out(row), changed=changed)


@router.delete(
    "/subscriptions/{subscription_id}",
    summary="Unsubscribe",
    status_code=204,
    response_class=Response,
    responses=problems(*ERRORS_READ, 404),
)
def unsubscribe(
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    subscription_id: uuid.UUID,
) -> Response:
    """The row stays, inactive: an unsubscribe that also overrides broader subscriptions (as
    `timbel notify unsubscribe`). Another user's is a 403 (audited
    `notify.unsubscribe.refused`) unless the caller is an admin."""
    row = subscriptions.find_subscription(warehouse, subscription_id)
    if row is None:
        raise not_found(f"no subscription with id {subscription_id}")
    try:
        subscriptions.unsubscribe(
            warehouse, str(row["user_name"]), str(row["channel"]), str(row["event"]),
            str(row["rule"]), actor=who.user,
        )  # fmt: skip
    except subscriptions.SubscriptionAccessError as error:
        raise ApiError(403, str(error), kind="forbidden") from None
    return Response(status_code=204)


@router.get(
    "/history",
    summary="The caller's deliveries, newest first",
    response_model=DeliveryList,
    responses=problems(*ERRORS_READ),
)
def history(
    request: Request,
    who: Annotated[Principal, Depends(require(ACTION))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    user: UserQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> DeliveryList:
    """The e-mails sent to the caller's address, with their status, attempts and last error
    (Slack notices go to a channel, not a person: `timbel notify history` lists them all)."""
    rows = records.history_of(warehouse, _whose(request, warehouse, who, user), limit)
    return DeliveryList(items=[DeliveryOut(**r) for r in rows])
