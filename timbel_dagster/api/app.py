"""The FastAPI application: `create_app` is uvicorn's factory (`timbel api serve`)."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from timbel_dagster.api import errors
from timbel_dagster.api.deps import RefusalThrottle, no_nul_characters
from timbel_dagster.api.public import unsubscribe
from timbel_dagster.api.ratelimit import RateLimiter
from timbel_dagster.api.routers import all_routers
from timbel_dagster.api.web import pages, sso
from timbel_dagster.identity.oidc import OidcConfig, OidcVerifier
from timbel_dagster.settings import Settings, load_settings
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.engine import get_engine

PREFIX = "/api/v1"
VERSION = "1.0.0"
DESCRIPTION = """\
Timbel's delivery warehouse over HTTP: executions now; deployments, approvals, templates and
the rest of issue 15 as they are built.

Authenticate with an API token from `timbel token create --user NAME`, sent as
`Authorization: Bearer tbl_...`. Errors are Problem Details (RFC 9457). Lists are paged with
an opaque `cursor`: pass the previous page's `next_cursor` until it is null.
"""


class SchemaOutdatedError(RuntimeError):
    """The warehouse is not at this version's schema: the API would fail on every request."""


def _require_current_schema(database_url: str) -> None:
    current, head = migrate.current_revision(database_url), migrate.head_revision()
    if current != head:
        raise SchemaOutdatedError(
            f"the warehouse schema is at {current or 'nothing'}, this version needs {head}: "
            "run `timbel db upgrade`"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for `settings` (read from the environment when None, as the CLI does)."""
    settings = settings or load_settings()
    _require_current_schema(settings.database_url)
    app = FastAPI(
        title="Timbel API",
        version=VERSION,
        description=DESCRIPTION,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        dependencies=[Depends(no_nul_characters)],
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings.database_url)
    app.state.refusal_throttle = RefusalThrottle()
    oidc = OidcConfig.from_settings(settings)
    app.state.oidc = OidcVerifier(oidc) if oidc else None
    app.state.rate_limiter = RateLimiter(
        settings.timbel_api_rate_limit,
        settings.timbel_api_write_rate_limit,
        settings.timbel_api_rate_limit_storage,
    )
    errors.install(app)
    for router in all_routers():
        app.include_router(router, prefix=PREFIX)
    # The approvals page: HTML, outside the versioned API and its OpenAPI document.
    app.include_router(pages.router)
    app.include_router(sso.router)
    # Outside /api/v1: the unsubscribe link of every e-mail (TIMBEL_PUBLIC_URL + /unsubscribe).
    app.include_router(unsubscribe.router)
    return app
