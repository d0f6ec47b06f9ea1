"""Pipeline templates: the marketplace list, versions, diffs, validation and ratings."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from timbel_dagster.pipeline_templates.marketplace import MAX_REVIEW

Kind = Literal["jenkinsfile", "gitlab-ci"]
Visibility = Literal["private", "team", "public"]
# A cap on what is read into memory; the validators' own limits (1 MiB for .gitlab-ci.yml,
# 128 KiB for a Jenkinsfile) answer with their error below it.
MAX_CONTENT = 2 * 1024 * 1024

_CONTENT = "stages: [test]\ntest:\n  stage: test\n  script: [make test]\n"
_SUMMARY = {
    "name": "python-service",
    "kind": "gitlab-ci",
    "visibility": "public",
    "owner": "dana",
    "rating_mean": 4.5,
    "n_ratings": 2,
    "bayesian": 4.1,
    "uses_90d": 7,
    "score": 5.14,
}
_VERSION = {
    "name": "python-service",
    "kind": "gitlab-ci",
    "owner": "dana",
    "visibility": "public",
    "version": 3,
    "parameters": {"python": {"default": "3.12", "description": "", "required": False}},
    "content_sha256": "9c1e4f0a...",
    "release_notes": "cache pip downloads",
    "created_by": "dana",
    "created_at": "2026-12-01T08:00:00Z",
    "rollback_of_version": None,
    "tags": ["stable"],
}


class TemplateSummary(BaseModel):
    """A template in the marketplace: its stars and recent use."""

    name: str
    kind: str
    visibility: str
    owner: str
    rating_mean: float | None = Field(description="Mean stars; null without ratings.")
    n_ratings: int
    bayesian: float = Field(description="Stars averaged towards the mean of every template.")
    uses_90d: int = Field(description="Repositories and jobs it was applied to in 90 days.")
    score: float = Field(description="What the list is ordered by, best first.")
    retired_at: dt.datetime | None = Field(
        default=None,
        description="When it was retired; null while in use (listed only with "
        "include_retired=true).",
    )


class TemplateList(BaseModel):
    """The templates the caller may see, best first."""

    items: list[TemplateSummary]

    model_config = {"json_schema_extra": {"examples": [{"items": [_SUMMARY]}]}}


class VersionOut(BaseModel):
    """One version of a template, without its content."""

    name: str
    kind: str
    owner: str
    visibility: str
    version: int
    parameters: dict[str, Any]
    content_sha256: str
    release_notes: str
    created_by: str
    created_at: dt.datetime
    rollback_of_version: int | None
    tags: list[str]
    retired_at: dt.datetime | None = Field(
        default=None, description="When the template was retired; null while in use."
    )


class VersionList(BaseModel):
    """Every version, oldest first."""

    items: list[VersionOut]

    model_config = {"json_schema_extra": {"examples": [{"items": [_VERSION]}]}}


class TemplateOut(VersionOut):
    """One version with its content (the latest unless asked otherwise)."""

    content: str
    description: str
    retired_by: str | None = Field(default=None, description="Who retired it.")
    retired_reason: str | None = Field(default=None, description="Why it was retired.")

    model_config = {
        "json_schema_extra": {
            "examples": [_VERSION | {"content": _CONTENT, "description": "Python services"}]
        }
    }


class PublishIn(BaseModel):
    """A template's next version; the first one creates it, owned by the caller."""

    kind: Kind | None = Field(default=None, description="Default: told from the content.")
    content: str = Field(min_length=1, max_length=MAX_CONTENT, description="Jinja2 text.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="name -> {default, description, required}."
    )
    release_notes: str = Field(default="", max_length=2000)
    visibility: Visibility | None = Field(default=None, description="Default: private (new).")
    team: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=2000)


class CreateIn(PublishIn):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "python-service",
                    "kind": "gitlab-ci",
                    "content": _CONTENT,
                    "visibility": "public",
                    "release_notes": "first version",
                }
            ]
        }
    }


class Published(TemplateOut):
    unchanged: bool = Field(description="True: same content as the latest; nothing written.")
    warnings: list[str]

    model_config = {
        "json_schema_extra": {
            "examples": [
                _VERSION
                | {"content": _CONTENT, "description": "", "unchanged": False, "warnings": []}
            ]
        }
    }


class DiffOut(BaseModel):
    """A unified diff between two versions (empty when they are the same)."""

    diff: str

    model_config = {
        "json_schema_extra": {
            "examples": [{"diff": "--- python-service@v2\n+++ python-service@v3\n@@ ..."}]
        }
    }


class ValidateIn(BaseModel):
    """A Jenkinsfile or .gitlab-ci.yml to check. It is only parsed, never run."""

    kind: Kind | None = Field(default=None, description="Default: told from the content.")
    content: str = Field(max_length=MAX_CONTENT)

    model_config = {"json_schema_extra": {"examples": [{"kind": "gitlab-ci", "content": _CONTENT}]}}


class Issue(BaseModel):
    line: int | None
    column: int | None
    message: str


class ValidationOut(BaseModel):
    """What the validator of `timbel template validate` found."""

    valid: bool
    kind: str = Field(description="jenkinsfile, jenkinsfile-scripted or gitlab-ci")
    checker: str = Field(description="What checked the syntax.")
    errors: list[Issue]
    warnings: list[str]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "valid": False,
                    "kind": "gitlab-ci",
                    "checker": "yaml+schema",
                    "errors": [{"line": 3, "column": 3, "message": "job test: no script"}],
                    "warnings": [],
                }
            ]
        }
    }


class RatingIn(BaseModel):
    stars: int = Field(ge=1, le=5)
    review: str = Field(default="", max_length=MAX_REVIEW)

    model_config = {"json_schema_extra": {"examples": [{"stars": 5, "review": "works"}]}}


class RatingOut(BaseModel):
    name: str
    user: str
    stars: int
    review: str
    previous_stars: int | None = Field(description="The caller's earlier rating, if any.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"name": "python-service", "user": "lee", "stars": 5, "review": "works",
                 "previous_stars": None}
            ]
        }
    }  # fmt: skip


class Review(BaseModel):
    user: str
    stars: int
    review: str
    created_at: dt.datetime


class ReviewList(BaseModel):
    """Ratings, newest first."""

    items: list[Review]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"items": [{"user": "lee", "stars": 5, "review": "works",
                            "created_at": "2026-12-02T10:00:00Z"}]}
            ]
        }
    }  # fmt: skip
