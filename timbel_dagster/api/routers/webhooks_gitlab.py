"""POST /api/v1/webhooks/gitlab: GitLab's Pipeline Hook and Job Hook.

A Pipeline Hook's execution row is stored at once, through the same `store_ci` the polling
ingestion writes with, so the warehouse has the pipeline's status seconds after GitLab sent
it; the delivery is recorded for `webhook_delivery_sensor`, which asks the ingestion to read
the project again (logs, artifacts, what the hook does not carry). A Job Hook is recorded
only. The polling sensor stays as the safety net for deliveries GitLab never made.
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
    body_digest,
    configured,
    json_body,
    json_body_doc,
    not_valid,
    raw_body,
    refuse,
    same_secret,
)
from timbel_dagster.records.delivery import CIRead
from timbel_dagster.resources.errors import SourceDataError
from timbel_dagster.resources.gitlab.hooks import EVENTS, PIPELINE_HOOK, hook_project, pipeline_hook
from timbel_dagster.warehouse.deliveries import Delivery, receive

router = APIRouter(tags=[TAG])

_BODY = json_body_doc("GitLab's webhook payload (Pipeline events, Job events).")


@router.post(
    "/webhooks/gitlab",
    summary="Receive a GitLab pipeline or job event",
    status_code=202,
    response_model=WebhookAnswer,
    responses=DUPLICATE | problems(400, 401, 404, 422),
    openapi_extra=_BODY,
)
def gitlab_webhook(
    request: Request,
    response: Response,
    body: Annotated[bytes, Depends(raw_body)],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    x_gitlab_token: Annotated[str | None, Header(description="The webhook's secret token.")] = None,
    x_gitlab_event: Annotated[str | None, Header(description="Pipeline Hook or Job Hook.")] = None,
    x_gitlab_webhook_uuid: Annotated[
        str | None, Header(description="The delivery's id; a retry sends the same one.")
    ] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description="Preferred over the UUID.")
    ] = None,
) -> WebhookAnswer:
    """Authenticated by `X-Gitlab-Token` (GITLAB_WEBHOOK_SECRET, compared in constant time).
    De-duplicated by `Idempotency-Key`, else `X-Gitlab-Webhook-UUID`, else the body's
    sha256: a retry answers 200 `duplicate` and changes nothing. Other events answer 202
    `ignored`."""
    secret = configured(request.app.state.settings.gitlab_webhook_secret,
                        "GITLAB_WEBHOOK_SECRET", "GitLab")  # fmt: skip
    if x_gitlab_token is None:
        raise refuse(request, warehouse, "gitlab", "missing", "no X-Gitlab-Token header")
    if not same_secret(x_gitlab_token, secret):
        raise refuse(request, warehouse, "gitlab", "wrong", "X-Gitlab-Token is not the secret")
    if x_gitlab_event not in EVENTS:
        return WebhookAnswer(status="ignored", detail=f"event {x_gitlab_event!r} is not used")
    data = json_body(body, "GitLab")
    key = idempotency_key or x_gitlab_webhook_uuid or body_digest(body)
    try:
        if not isinstance(data, dict):
            raise SourceDataError("gitlab", "webhook", "expected an object")
        read = None
        if x_gitlab_event == PIPELINE_HOOK:
            pipeline, execution = pipeline_hook(data)
            read = CIRead(pipelines=[pipeline], executions=[execution])
        subject = hook_project(data)
    except SourceDataError as error:
        raise not_valid("GitLab", error) from None
    delivery = Delivery("gitlab", key, x_gitlab_event, subject, data)
    if not receive(warehouse, delivery, read):
        response.status_code = 200
        return WebhookAnswer(status="duplicate", delivery_key=key)
    return WebhookAnswer(status="accepted", delivery_key=key)
