"""POST /api/v1/webhooks/jenkins/{secret}: the Jenkins Notification plugin.

The plugin cannot sign or add headers, so the secret is the last segment of the URL it is
given (compared in constant time with JENKINS_WEBHOOK_SECRET); use HTTPS, as the URL is the
credential. Each (job, build, phase) is recorded once for `webhook_delivery_sensor`: a
started build is followed, a completed one ingested.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
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
from timbel_dagster.resources.jenkins.notification import parse_notification
from timbel_dagster.warehouse.deliveries import Delivery, receive

router = APIRouter(tags=[TAG])

_BODY = json_body_doc("The Notification plugin's JSON: name, url, build{number, phase, ...}.")


@router.post(
    "/webhooks/jenkins/{secret}",
    summary="Receive a Jenkins Notification plugin event",
    status_code=202,
    response_model=WebhookAnswer,
    responses=DUPLICATE | problems(400, 401, 404, 422),
    openapi_extra=_BODY,
)
def jenkins_webhook(
    request: Request,
    response: Response,
    body: Annotated[bytes, Depends(raw_body)],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    secret: Annotated[str, Path(description="JENKINS_WEBHOOK_SECRET.")],
) -> WebhookAnswer:
    """Authenticated by the secret in the path. De-duplicated by (job, build number, phase):
    a retry answers 200 `duplicate` and changes nothing."""
    expected = configured(request.app.state.settings.jenkins_webhook_secret,
                          "JENKINS_WEBHOOK_SECRET", "Jenkins")  # fmt: skip
    if not same_secret(secret, expected):
        raise refuse(request, warehouse, "jenkins", "wrong", "the URL's secret is not the secret")
    data = json_body(body, "Jenkins")
    try:
        notice = parse_notification(data)
    except SourceDataError as error:
        raise not_valid("Jenkins", error) from None
    delivery = Delivery("jenkins", notice.key, notice.phase, notice.job, data)
    if not receive(warehouse, delivery):
        response.status_code = 200
        return WebhookAnswer(status="duplicate", delivery_key=notice.key)
    return WebhookAnswer(status="accepted", delivery_key=notice.key)
