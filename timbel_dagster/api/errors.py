"""One error body for every refusal: Problem Details (RFC 9457).

`type`, `title`, `status`, `detail`, and for 422 `errors[]`, each with the `loc` of the
field (`["query", "limit"]`). Routes attach the statuses they can answer with through
`responses=problems(...)`, so the OpenAPI document lists them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
# A URN, not a URL: there is no page to fetch per problem kind (RFC 9457 allows any URI).
TYPE_BASE = "urn:timbel:problem:"


class FieldError(BaseModel):
    loc: list[str | int] = Field(
        description="Where the bad value is: query, path or body, then the field."
    )
    msg: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 Problem Details."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="422 only: each bad field.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "type": TYPE_BASE + "validation",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "1 field is not valid",
                    "errors": [
                        {
                            "loc": ["query", "limit"],
                            "msg": "Input should be less than or equal to 200",
                            "type": "less_than_equal",
                        }
                    ],
                }
            ]
        }
    }


class ApiError(Exception):
    """A refusal a route or dependency raises; the handler turns it into a Problem."""

    def __init__(
        self, status: int, detail: str, *, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers = status, detail, kind, headers


_KINDS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    422: "validation",
    429: "rate-limited",
}
_DESCRIPTIONS = {
    400: "The body could not be parsed.",
    401: "No token, or a token that is unknown, revoked, expired or of a disabled user.",
    403: "The token's user may not take this action.",
    404: "No such resource.",
    409: "The resource is not in a state that allows this; the detail says why.",
    422: "A parameter or body field is not valid; `errors[].loc` says which.",
    429: "Over the token's rate limit; `Retry-After` says when to try again.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses with the Problem body."""
    return {
        status: {
            # No `model`: FastAPI would also list application/json, which is never sent. The
            # schema is put into the document's components by `install`.
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


# Every route that needs a token; routes with a body add 400.
ERRORS_READ = (401, 403, 422, 429)


def problem_response(
    status: int, detail: str, *, kind: str | None = None, errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:  # fmt: skip
    body = Problem(
        type=TYPE_BASE + (kind or _KINDS.get(status, "error")),
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_errors(error: RequestValidationError) -> list[dict]:
    return [
        {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
        for item in error.errors()
    ]


async def _on_validation(_request: Request, error: RequestValidationError) -> JSONResponse:
    errors = _field_errors(error)
    if any(item["type"] == "json_invalid" for item in errors):
        return problem_response(400, "the body is not valid JSON", errors=errors)
    count = len(errors)
    detail = "1 field is not valid" if count == 1 else f"{count} fields are not valid"
    return problem_response(422, detail, errors=errors)


async def _on_api_error(_request: Request, error: ApiError) -> JSONResponse:
    return problem_response(error.status, error.detail, kind=error.kind, headers=error.headers)


async def _on_http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    # Starlette's own refusals (no such path, wrong method, a body it cannot parse).
    return problem_response(
        error.status_code, str(error.detail), headers=getattr(error, "headers", None)
    )


def _with_problem_schema(document: dict[str, Any]) -> None:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["Problem"] = schema


def install(app: FastAPI) -> None:
    """The Problem handlers, and the Problem schema in the OpenAPI document."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _with_problem_schema(generate())  # generate() caches it in app.openapi_schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
