"""Every route of /api/v1 x every role x tenant membership: 403 exactly when the policy table
refuses the route's action for the caller's role, 401 without a token. (Team and tenant
scopes are checked once a route has found what is acted on: its own tests cover them.)
Generic: a route added later is covered without touching this file, and a route that names
no policy action fails here unless it is on the allow-list below. Also: docs/api.md's route
table is the one the routes generate."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import RouteContext
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from tests.api.conftest import bearer, secret_for
from tests.api.tenant_data import IMAGES, IMAGES_SEEN, reference, store_images, store_tenants
from tests.identity.people import PEOPLE
from timbel_dagster.api import routetable
from timbel_dagster.api.app import create_app
from timbel_dagster.api.deps import require
from timbel_dagster.api.errors import ApiError
from timbel_dagster.identity.authorize import may_role
from timbel_dagster.identity.principal import Principal, load_principal
from timbel_dagster.settings import load_settings
from timbel_dagster.warehouse.people.membership import set_tenant_members
from timbel_dagster.warehouse.schema.deploy import Tenant
from timbel_dagster.warehouse.schema.security import VulnerabilityFinding

# Routes that name no action of the policy table, and why. Webhooks prove themselves with
# their own signatures; the unsubscribe link with its HMAC; /me needs only a valid token.
ALLOWED_WITHOUT_ACTION = re.compile(r"^/api/v1/(me|unsubscribe|webhooks/.*)$")
# The policy is the same on both backends; the routes' SQL is covered by their own tests.
pytestmark = pytest.mark.parametrize("warehouse_backend", ["sqlite"])
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture
def app(engine, warehouse_url: str) -> FastAPI:
    # The matrix makes many requests per token: the rate limit is not what it tests.
    return create_app(
        load_settings(timbel_database_url=warehouse_url, timbel_api_rate_limit="100000/minute",
                      timbel_api_write_rate_limit="100000/minute")
    )  # fmt: skip


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _routes(app: FastAPI) -> list[tuple[str, RouteContext]]:
    return [(method, route) for route in routetable.api_routes(app)
            for method in sorted(route.methods - {"HEAD", "OPTIONS"})]  # fmt: skip


def _sample(annotation: object) -> str:
    if annotation is int:
        return "1"
    if annotation is uuid.UUID:
        return str(uuid.UUID(int=1))
    return "probe"


def _url(route: RouteContext) -> str:
    path = route.path
    for param in route.dependant.path_params:
        path = path.replace(f"{{{param.name}}}", _sample(param.field_info.annotation))
    return path


def _add_tenant(engine, name: str, members: list[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(insert(Tenant).values(
            id=uuid.uuid4(), name=name, cpu_cores=4.0, memory_bytes=8e9, clusters=["a"],
            status="provisioned", created_by="admin", created_at=now, updated_at=now,
        ))  # fmt: skip
        set_tenant_members(connection, name, members)


def _without_action(app: FastAPI) -> list[str]:
    return [f"{method} {route.path}" for method, route in _routes(app)
            if routetable.action_of(route) is None
            and not ALLOWED_WITHOUT_ACTION.match(route.path)]  # fmt: skip


def test_every_route_names_a_policy_action_or_is_allowed_without(app) -> None:
    missing = _without_action(app)
    assert not missing, (
        "routes that name no policy action: depend on api.deps.require(action) "
        f"(identity/policy.py), or add them to ALLOWED_WITHOUT_ACTION with a reason: {missing}"
    )

    @app.get("/api/v1/open-probe")
    def open_probe() -> dict:
        return {}

    assert _without_action(app) == ["GET /api/v1/open-probe"]


def test_without_a_token_every_route_is_401(app, client) -> None:
    wrong = []
    for method, route in _routes(app):
        if routetable.action_of(route) is None:
            continue  # webhooks and the unsubscribe link do not take bearer tokens
        status = client.request(method, _url(route)).status_code
        if status != 401:
            wrong.append(f"{method} {route.path}: {status}")
    assert not wrong, wrong


def _mismatches(app, client, engine) -> tuple[list[str], int]:
    """Each (route, role) whose 403 disagrees with the policy table; how many were tried."""
    names = [name for name, _role, _team in PEOPLE]
    headers = {name: bearer(secret_for(engine, name)) for name in names}
    with engine.connect() as connection:
        principals = {name: load_principal(connection, name) for name in names}
    wrong, checked = [], 0
    for method, route in _routes(app):
        action = routetable.action_of(route)
        if action is None or action == routetable.ANY_TOKEN:
            continue
        for name in names:
            refused = not may_role(principals[name], action).allowed
            # Anything the route answers is fine but a 403 that the policy did not decide
            # (or its absence where it did); the body is empty, so writes change nothing.
            status = client.request(method, _url(route), headers=headers[name]).status_code
            checked += 1
            if (status == 403) != refused:
                role = principals[name].role
                wrong.append(f"{method} {route.path} as {role}: {status}, policy refuses: "
                             f"{refused}")  # fmt: skip
    return wrong, checked


@pytest.mark.parametrize("tenant_member", [False, True], ids=["no-tenant", "tenant-member"])
def test_403_exactly_when_the_policy_refuses(app, client, engine, tenant_member) -> None:
    if tenant_member:
        _add_tenant(engine, "acme", [name for name, _role, _team in PEOPLE])
    wrong, checked = _mismatches(app, client, engine)
    assert checked, "no route names a policy action"
    assert not wrong, "\n".join(wrong)


def test_the_matrix_catches_a_route_that_refuses_on_its_own(app, client, engine) -> None:
    # A route that names a policy action open to everyone, then refuses viewers by itself
    # (a second, hidden policy): the matrix must name it.
    @app.get("/api/v1/matrix-probe")
    def matrix_probe(who: Annotated[Principal, Depends(require("executions.read"))]) -> dict:
        if who.role == "viewer":
            raise ApiError(403, "viewers may not", kind="forbidden")
        return {}

    wrong, _checked = _mismatches(app, client, engine)
    assert wrong == ["GET /api/v1/matrix-probe as viewer: 403, policy refuses: False"]


def test_security_routes_answer_another_tenants_image_as_unknown(
    app, client, engine, warehouse_url
) -> None:
    # Tenant scope by image: every role may read security (no 403), and what is not theirs
    # is a 404, never a 403 that would confirm the image exists. Members of no tenant see
    # no image; operations and admin see every one.
    store_tenants(engine, warehouse_url)
    keys = store_images(engine)
    with engine.connect() as connection:
        ids = {
            image: str(connection.execute(
                select(VulnerabilityFinding.id).where(VulnerabilityFinding.artifact_key == key)
            ).scalars().first())
            for image, key in keys.items()
        }  # fmt: skip
    seen = {name: set() for name, _role, _team in PEOPLE} | IMAGES_SEEN
    wrong = []
    for user, images in sorted(seen.items()):
        headers = bearer(secret_for(engine, user))
        for image in IMAGES:
            ref = reference(image, "tag")
            for path, params in (
                (f"/api/v1/security/findings/{ids[image]}", {}),
                ("/api/v1/security/findings", {"image": ref}),
                ("/api/v1/security/gate", {"image": ref}),
            ):
                status = client.get(path, params=params, headers=headers).status_code
                if status != (200 if image in images else 404):
                    wrong.append(f"{user} {path} {params}: {status}")
    assert not wrong, "\n".join(wrong)


def test_docs_api_md_carries_the_generated_route_table(app) -> None:
    table = routetable.markdown(app)
    assert table in DOCS.read_text(encoding="utf-8"), (
        "docs/api.md's route table is not the one the routes generate; replace it with:\n" + table
    )
