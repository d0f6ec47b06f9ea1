"""POST /api/v1/webhooks/registry: the OCI distribution registry's push notifications.

Each manifest push is recorded once (by the event's id) for the image sensors, which request
its scan without waiting for their next listing of the registry.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import warehouse_engine
from timbel_dagster.api.errors import problems
from timbel_dagster.api.webhooks import (
    DUPLICATE,
    TAG,
    WebhookAnswer,
    configured,
    json_body,
    json_body_doc,
    not_valid,
    raw_body,
    refuse,
    same_secret,
)
from timbel_dagster.resources.errors import SourceDataError
from timbel_dagster.resources.registry_events import MEDIA_TYPE, manifest_pushes
from timbel_dagster.warehouse.deliveries import Delivery, receive

router = APIRouter(tags=[TAG])

_BODY = json_body_doc('The registry\'s envelope: `{"events": [...]}`.', MEDIA_TYPE)


@router.post(
    "/webhooks/registry",
    summary="Receive the OCI registry's push notifications",
    status_code=202,
    response_model=WebhookAnswer,
    responses=DUPLICATE | problems(400, 401, 404, 422),
    openapi_extra=_BODY,
)
def registry_webhook(
    request: Request,
    response: Response,
    body: Annotated[bytes, Depends(raw_body)],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    authorization: Annotated[
        str | None,
        Header(
            description="`Bearer REGISTRY_WEBHOOK_SECRET`, from the registry's "
            "`notifications.endpoints[].headers`."
        ),
    ] = None,
) -> WebhookAnswer:
    """Authenticated by the `Authorization` header the registry is configured to send
    (compared in constant time). Each manifest push is recorded by its event id; an
    envelope of replays answers 200 `duplicate`, one without manifest pushes 202 `ignored`."""
    secret = configured(request.app.state.settings.registry_webhook_secret,
                        "REGISTRY_WEBHOOK_SECRET", "registry")  # fmt: skip
    if authorization is None:
        raise refuse(request, warehouse, "registry", "missing", "no Authorization header")
    if not same_secret(authorization, f"Bearer {secret}"):
        raise refuse(request, warehouse, "registry", "wrong", "Authorization is not the secret")
    try:
        pushes = manifest_pushes(json_body(body, "registry"))
    except SourceDataError as error:
        raise not_valid("registry", error) from None
    if not pushes:
        return WebhookAnswer(status="ignored", detail="no manifest push in the envelope")
    recorded = sum(
        receive(warehouse, Delivery("registry", p.event_id, "push", p.subject, p.event))
        for p in pushes
    )
    if not recorded:
        response.status_code = 200
        return WebhookAnswer(status="duplicate", detail=f"{len(pushes)} pushes recorded before")
    return WebhookAnswer(
        status="accepted", detail=f"{recorded} of {len(pushes)} manifest pushes recorded"
    )
