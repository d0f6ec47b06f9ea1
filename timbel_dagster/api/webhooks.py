"""What every webhook route shares: the sender's secret checked in constant time, refusals
audited (at most once a minute per source and reason, as bearer-token refusals are), the raw
body (signatures and de-duplication need the bytes as sent), and the answer.

Webhooks are not authenticated by API tokens: each sender has its own mechanism (a token
header, a secret in the URL, a signature). A webhook whose secret is not set answers 404: it
does not exist until an operator configures it, and a sender gets a clear, final answer
instead of a 5xx it would retry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy.engine import Engine

from timbel_dagster.api.errors import ApiError
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.deliveries import ACTOR_PREFIX

TAG = "webhooks"


class WebhookAnswer(BaseModel):
    """What a webhook did with a delivery."""

    status: Literal["accepted", "duplicate", "ignored"] = Field(
        description="accepted: recorded (the sensors act on it); duplicate: this delivery was "
        "recorded before, nothing changed; ignored: an event Timbel does not use."
    )
    delivery_key: str | None = Field(None, description="The key the delivery is de-duplicated by.")
    detail: str | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"status": "accepted", "delivery_key": "0d4bc1d4-0b6c-4c4b-9a8d-7a3c1e2f9b10"}
            ]
        }
    }


# A replay answers 200 where a new delivery answers 202.
def json_body_doc(description: str, media_type: str = "application/json") -> dict[str, Any]:
    """The `openapi_extra=` of a webhook route: its required JSON object body (routes read the
    raw bytes to check signatures, so FastAPI cannot document the body itself)."""
    return {
        "requestBody": {
            "required": True,
            "content": {media_type: {"schema": {"type": "object"}}},
            "description": description,
        }
    }


DUPLICATE: dict[int | str, dict[str, Any]] = {
    200: {"description": "A replay: recorded before, nothing changed.", "model": WebhookAnswer}
}


async def raw_body(request: Request) -> bytes:
    """The body as sent (a dependency, so the routes can stay synchronous)."""
    return await request.body()


def configured(secret: SecretStr | None, setting: str, what: str) -> str:
    """The secret's value, or 404 when the webhook is not configured."""
    if secret is None:
        raise ApiError(404, f"the {what} webhook is not configured ({setting} is not set)",
                       kind="not-found")  # fmt: skip
    return secret.get_secret_value()


def same_secret(given: str | None, expected: str) -> bool:
    """Whether `given` is `expected`, in time independent of where they differ."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _templated(request: Request) -> str:
    """The request's path with its parameters as `{name}`: Jenkins' URL carries its secret,
    which must not reach the audit log."""
    path = request.url.path
    for name, value in request.path_params.items():
        if value:
            path = path.replace(f"/{value}", f"/{{{name}}}")
    return path


def refuse(request: Request, engine: Engine, source: str, reason: str, detail: str) -> ApiError:
    """A 401 for `source`, audited as `api.refused` unless the same refusal was audited
    within the minute (a flood of forged deliveries must not grow the audit chain)."""
    throttle = request.app.state.refusal_throttle
    if throttle.due(f"webhook:{source}:{reason}", dt.datetime.now(dt.UTC)):
        with engine.begin() as connection:
            append_event(
                connection,
                actor=ACTOR_PREFIX + source,
                action="api.refused",
                target=f"{request.method} {_templated(request)}",
                details={"status": 401, "reason": reason},
            )
    return ApiError(401, detail, kind="unauthenticated")


def json_body(body: bytes, what: str) -> Any:
    """The body as JSON, or 400 naming the sender."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, f"the {what} delivery is not valid JSON", kind="bad-request") from None


def body_digest(body: bytes) -> str:
    """The key of a delivery that carries no id of its own: the same bytes are the same one."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def not_valid(what: str, error: Exception) -> ApiError:
    return ApiError(422, f"the {what} delivery is not valid: {error}", kind="validation")
