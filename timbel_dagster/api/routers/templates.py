"""/api/v1/templates: stored pipeline templates; the functions of `timbel template publish |
versions | show | diff | validate | rate | reviews | marketplace | retire | restore`.
Visibility, owner and team rules are the domain's (`pipeline_templates.access`): a template
the caller may not see is a 404, as if it did not exist. DELETE retires a template rather
than erasing it (`pipeline_templates.retirement`): its versions stay readable, and POST
.../restore puts it back in use."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.engine import Engine

from timbel_dagster.api.deps import require, warehouse_engine
from timbel_dagster.api.errors import ERRORS_READ, ApiError, problems
from timbel_dagster.api.guard import invalid, not_found
from timbel_dagster.api.schemas.templates import (
    CreateIn,
    DiffOut,
    Kind,
    Published,
    PublishIn,
    RatingIn,
    RatingOut,
    ReviewList,
    TemplateList,
    TemplateOut,
    ValidateIn,
    ValidationOut,
    VersionList,
)
from timbel_dagster.identity.principal import Principal
from timbel_dagster.pipeline_templates import marketplace, retirement, store
from timbel_dagster.pipeline_templates.access import TemplateAccessError
from timbel_dagster.pipeline_templates.state import TemplateStateError
from timbel_dagster.pipeline_templates.validate import detect_kind, validate_text

MAX_LIMIT = 200
ERRORS_WRITE = (400, *ERRORS_READ, 404)
ERRORS_STATE = (*ERRORS_WRITE, 409)
Name = Annotated[str, Path(max_length=128, description="The template's name.")]
Ref = Annotated[
    str | None, Query(max_length=128, description="A version number or a tag (default latest).")
]
router = APIRouter(prefix="/templates", tags=["templates"])


def _refused(error: Exception, field: tuple[str | int, ...] = ("body",)) -> NoReturn:
    """The domain's refusal as a Problem: unknown or invisible 404, not the owner 403, retired
    (or, to restore, not retired) 409 (the domain audited both), bad content or values 422 at
    `field`."""
    if isinstance(error, store.TemplateInvalidError):
        raise invalid(("body", "content"), str(error)) from None
    if isinstance(error, TemplateAccessError):
        raise ApiError(403, str(error), kind="forbidden") from None
    if isinstance(error, TemplateStateError):
        raise ApiError(409, str(error), kind="conflict") from None
    if isinstance(error, LookupError):
        raise not_found(str(error)) from None
    raise invalid(field, str(error)) from None


@router.get(
    "",
    summary="The templates the caller may see, best first",
    response_model=TemplateList,
    responses=problems(*ERRORS_READ),
)
def templates(
    who: Annotated[Principal, Depends(require("templates.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    kind: Annotated[Kind | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    include_retired: Annotated[
        bool, Query(description="Retired templates too (`retired_at` set).")
    ] = False,
) -> TemplateList:
    """The marketplace of `timbel template marketplace`: stars averaged towards the mean of
    every template, plus recent adoption; only templates the caller may see, and retired ones
    only with `include_retired=true`."""
    return TemplateList(
        items=marketplace.ranking(warehouse, who.user, kind, limit, include_retired=include_retired)
    )


@router.post(
    "/validate",
    summary="Validate a Jenkinsfile or .gitlab-ci.yml",
    response_model=ValidationOut,
    responses=problems(400, *ERRORS_READ),
)
def validate(
    _who: Annotated[Principal, Depends(require("templates.read"))], body: ValidateIn
) -> ValidationOut:
    """The checks of `timbel template validate` (Groovy compiler and declarative structure;
    GitLab's schema and rules) with their size and depth limits. The content is only parsed:
    nothing in it runs. An invalid file is a 200 with `valid: false` and its errors."""
    try:
        checked: dict[str, Any] = dict(validate_text(body.content, body.kind))
    except ValueError as error:
        raise invalid(("body", "content"), str(error)) from None
    return ValidationOut(**checked)


def _kind(body: PublishIn) -> str:
    """The body's kind, else told from the content as `timbel template publish` does."""
    if body.kind:
        return body.kind
    try:
        return detect_kind(FilePath("template"), body.content)
    except ValueError:
        raise invalid(
            ("body", "kind"), "cannot tell the kind from the content: give kind"
        ) from None


def _publish(warehouse: Engine, who: Principal, name: str, body: PublishIn) -> Published:
    kind = _kind(body)
    try:
        made = store.publish(
            warehouse, who.user, name, kind, body.content, parameters=body.parameters,
            release_notes=body.release_notes, visibility=body.visibility, team=body.team,
            description=body.description,
        )  # fmt: skip
        shown = store.show(warehouse, who.user, name, made["version"])
    except (LookupError, ValueError) as error:
        _refused(error)
    return Published(**shown, unchanged=made["unchanged"], warnings=made["warnings"])


@router.post(
    "",
    summary="Publish a template (its first version, or the next)",
    status_code=201,
    response_model=Published,
    responses=problems(*ERRORS_STATE),
)
def create(
    who: Annotated[Principal, Depends(require("templates.write"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    body: CreateIn,
) -> Published:
    """As `timbel template publish`: the content is rendered with the parameters' defaults
    and validated (422 with the errors' positions when it is not valid; nothing is saved).
    A new name creates the template, owned by the caller; an existing one takes its owner or
    an admin (403, audited `template.publish.refused`). Audited `template.publish`."""
    return _publish(warehouse, who, body.name, body)


@router.get(
    "/{name}",
    summary="A template's latest version (or VERSION/TAG) with its content",
    response_model=TemplateOut,
    responses=problems(*ERRORS_READ, 404),
)
def show(
    who: Annotated[Principal, Depends(require("templates.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
    ref: Ref = None,
) -> TemplateOut:
    """404 for a template the caller may not see, or a version or tag it does not have."""
    try:
        return TemplateOut(**store.show(warehouse, who.user, name, ref))
    except (LookupError, ValueError) as error:
        _refused(error, ("query", "ref"))


@router.put(
    "/{name}",
    summary="Publish the next version of template NAME",
    response_model=Published,
    responses=problems(*ERRORS_STATE),
)
def publish(
    who: Annotated[Principal, Depends(require("templates.write"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
    body: PublishIn,
) -> Published:
    """As POST /templates with the name in the path. The same content as the latest version
    is a no-op (`unchanged: true`); a retired template takes no new version (409, audited
    `template.publish.refused`)."""
    return _publish(warehouse, who, name, body)


@router.get(
    "/{name}/versions",
    summary="A template's versions, oldest first",
    response_model=VersionList,
    responses=problems(*ERRORS_READ, 404),
)
def versions(
    who: Annotated[Principal, Depends(require("templates.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
) -> VersionList:
    """Each version's number, author, notes, tags and content digest (no content)."""
    try:
        return VersionList(items=store.versions(warehouse, who.user, name))
    except LookupError as error:
        _refused(error)


@router.get(
    "/{name}/diff",
    summary="Unified diff between two versions (or tags)",
    response_model=DiffOut,
    responses=problems(*ERRORS_READ, 404),
)
def diff(
    who: Annotated[Principal, Depends(require("templates.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
    from_: Annotated[str, Query(alias="from", max_length=128, description="Version or tag.")],
    to: Annotated[str, Query(max_length=128, description="Version or tag.")],
) -> DiffOut:
    """As `timbel template diff NAME FROM TO`; a change of the parameters follows as a diff of
    their JSON."""
    try:
        return DiffOut(diff=store.diff(warehouse, who.user, name, from_, to))
    except (LookupError, ValueError) as error:
        _refused(error, ("query",))


@router.post(
    "/{name}/ratings",
    summary="Rate a template (again: replaces one's rating)",
    response_model=RatingOut,
    responses=problems(*ERRORS_STATE),
)
def rate(
    who: Annotated[Principal, Depends(require("templates.rate"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
    body: RatingIn,
) -> RatingOut:
    """1-5 stars and an optional review, audited `template.rate`; one's own template cannot
    be rated (422), nor a retired one (409, audited `template.rate.refused`)."""
    try:
        return RatingOut(**marketplace.rate(warehouse, who.user, name, body.stars, body.review))
    except (LookupError, ValueError) as error:
        _refused(error)


@router.get(
    "/{name}/ratings",
    summary="A template's ratings and reviews, newest first",
    response_model=ReviewList,
    responses=problems(*ERRORS_READ, 404),
)
def ratings(
    who: Annotated[Principal, Depends(require("templates.read"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
) -> ReviewList:
    """Who rated it, with how many stars and what they wrote."""
    try:
        return ReviewList(items=marketplace.reviews(warehouse, who.user, name))
    except LookupError as error:
        _refused(error)


@router.delete(
    "/{name}",
    summary="Retire a template (its versions stay readable)",
    status_code=204,
    response_class=Response,
    responses=problems(*ERRORS_STATE),
)
def retire(
    who: Annotated[Principal, Depends(require("templates.retire"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
    reason: Annotated[
        str,
        Query(
            min_length=1,
            max_length=retirement.MAX_REASON,
            pattern=r"\S",
            description="Why it is retired (kept with the template and audited).",
        ),
    ],
) -> Response:
    """As `timbel template retire NAME --reason ...`: the template is hidden from the list
    (unless `include_retired=true`) and takes no new versions, ratings or tags; every version
    stays readable, and POST .../restore puts it back. Its owner or an admin (403, audited
    `template.retire.refused`); 409 when it is retired already (audited too). Audited
    `template.retire`."""
    try:
        retirement.retire(warehouse, who.user, name, reason)
    except (LookupError, ValueError) as error:
        _refused(error, ("query", "reason"))
    return Response(status_code=204)


@router.post(
    "/{name}/restore",
    summary="Put a retired template back in use",
    response_model=TemplateOut,
    responses=problems(*ERRORS_STATE),
)
def restore(
    who: Annotated[Principal, Depends(require("templates.restore"))],
    warehouse: Annotated[Engine, Depends(warehouse_engine)],
    name: Name,
) -> TemplateOut:
    """As `timbel template restore NAME`: answers the latest version, in use again. Its owner
    or an admin (403); 409 when it is not retired (both audited `template.restore.refused`).
    Audited `template.restore`."""
    try:
        retirement.restore(warehouse, who.user, name)
        return TemplateOut(**store.show(warehouse, who.user, name))
    except (LookupError, ValueError) as error:
        _refused(error)
