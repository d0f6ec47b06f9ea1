"""OIDC bearer tokens against a local issuer (tests/api/oidc_issuer.py): the JWKS found by
discovery, the claims checked, the user looked up, the role never above the table's."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Annotated

import jwt
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.api.conftest import audit_events, bearer, secret_for
from tests.api.oidc_issuer import AUDIENCE, Issuer, new_key, serve_issuer
from timbel_dagster.api.app import create_app
from timbel_dagster.api.deps import require
from timbel_dagster.identity.oidc import ROLE_ORDER, parse_role_map
from timbel_dagster.identity.principal import Principal
from timbel_dagster.settings import load_settings
from timbel_dagster.warehouse.people.user_admin import set_disabled
from timbel_dagster.warehouse.schema.models import USER_ROLES, User


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as running:
        yield running


def _client(warehouse_url: str, issuer: Issuer, **settings) -> TestClient:
    options = {"timbel_oidc_issuer": issuer.url, "timbel_oidc_audience": AUDIENCE} | settings
    return TestClient(create_app(load_settings(timbel_database_url=warehouse_url, **options)))


@pytest.fixture
def oidc_client(engine, warehouse_url, issuer) -> Iterator[TestClient]:
    with _client(warehouse_url, issuer) as client:
        yield client


def _me(client: TestClient, token: str):
    return client.get("/api/v1/me", headers=bearer(token))


def test_a_valid_token_of_a_known_user_is_let_in_with_the_tables_role(oidc_client, issuer):
    response = _me(oidc_client, issuer.token())
    assert response.status_code == 200, response.text
    assert (response.json()["user"], response.json()["role"]) == ("lead", "team_lead")
    # The JWKS was found through the discovery document, and fetched once for two tokens.
    assert _me(oidc_client, issuer.token()).status_code == 200
    assert issuer.requests == ["/.well-known/openid-configuration", "/jwks"]


def test_the_subject_wins_over_the_user_claim(oidc_client, issuer, engine):
    with engine.begin() as connection:
        connection.execute(update(User).where(User.name == "dev").values(oidc_subject="s-dev"))
    response = _me(oidc_client, issuer.token(sub="s-dev", preferred_username="admin"))
    assert response.json()["user"] == "dev"


def _unsigned(issuer: Issuer) -> str:
    def part(data: dict) -> str:
        return (
            base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()
        )

    claims = {k: int(v.timestamp()) if isinstance(v, dt.datetime) else v
              for k, v in issuer.claims().items()}  # fmt: skip
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'test-key-1'})}.{part(claims)}."


def _hs256_with_public_key(issuer: Issuer) -> str:
    # Algorithm confusion: the public key (which anyone can fetch) used as an HMAC secret.
    # PyJWT refuses to *sign* with a PEM as HMAC secret, so the signature is made by hand.
    header = {"alg": "HS256", "typ": "JWT", "kid": "test-key-1"}
    claims = {k: int(v.timestamp()) if isinstance(v, dt.datetime) else v
              for k, v in issuer.claims().items()}  # fmt: skip

    def part(data: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    signing_input = part(header) + b"." + part(claims)
    signature = hmac.new(issuer.public_pem(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


REFUSED = {
    "expired": lambda i: i.token(
        exp=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
        iat=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10),
        nbf=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10),
    ),
    "not yet valid": lambda i: i.token(nbf=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)),
    "no exp": lambda i: jwt.encode(
        {k: v for k, v in i.claims().items() if k != "exp"},
        i.key,
        "RS256",
        headers={"kid": "test-key-1"},
    ),
    "wrong audience": lambda i: i.token(aud="another-api"),
    "wrong issuer": lambda i: i.token(iss="http://127.0.0.1:1/elsewhere"),
    "unknown kid": lambda i: i.token(kid="not-in-the-jwks"),
    "another key, same kid": lambda i: i.token(key=new_key()),
    "alg none": _unsigned,
    "HS256 with the public key": _hs256_with_public_key,
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_bad_token_is_401_and_audited(oidc_client, issuer, engine, case):
    response = _me(oidc_client, REFUSED[case](issuer))
    assert response.status_code == 401, response.text
    assert "OIDC token was refused" in response.json()["detail"]
    assert audit_events(engine, "api.refused")[-1][2] == {"status": 401, "reason": "invalid"}


def test_an_unknown_user_is_401(oidc_client, issuer, engine):
    response = _me(oidc_client, issuer.token(sub="nobody", preferred_username="nobody"))
    assert response.status_code == 401
    assert "nobody" in response.json()["detail"]
    assert audit_events(engine, "api.refused")[-1][2]["reason"] == "unknown_user"


def test_a_disabled_user_is_401(oidc_client, issuer, engine):
    set_disabled(engine, "admin", "lead", True)
    response = _me(oidc_client, issuer.token())
    assert response.status_code == 401
    assert audit_events(engine, "api.refused")[-1][2]["reason"] == "user_disabled"


def test_a_service_account_is_401_by_name_or_subject(oidc_client, issuer, engine):
    # A service account acts only through its API tokens: an identity at the issuer that
    # carries its name (or is bound to it) must not become it.
    with engine.begin() as connection:
        connection.execute(
            update(User).where(User.name == "ops").values(kind="service", oidc_subject="s-ops")
        )
    for token in (issuer.token(sub="x", preferred_username="ops"), issuer.token(sub="s-ops")):
        response = _me(oidc_client, token)
        assert response.status_code == 401, response.text
        assert "'ops' is a service account, which cannot sign in" in response.json()["detail"]
        assert "`timbel token create --user ops`" in response.json()["detail"]
        assert audit_events(engine, "api.refused")[-1][2]["reason"] == "service_account"
    # Its own API token still works.
    assert (
        oidc_client.get("/api/v1/me", headers=bearer(secret_for(engine, "ops"))).json()["user"]
        == "ops"
    )


@pytest.mark.parametrize(
    ("user", "groups", "role"),
    [
        ("lead", ["readers"], "viewer"),  # the claim lowers the role
        ("lead", ["ops-team"], "team_lead"),  # never above the table's
        ("viewer", ["admin"], "viewer"),  # a role name maps to itself, still capped
        ("ops", ["readers", "ops-team"], "operations"),  # several groups: the highest
    ],
)
def test_the_role_claim_is_used_but_never_above_the_tables(
    engine, warehouse_url, issuer, user, groups, role
):
    with _client(
        warehouse_url, issuer, timbel_oidc_role_claim="groups",
        timbel_oidc_role_map="readers=viewer,ops-team=operations",
    ) as client:  # fmt: skip
        response = _me(client, issuer.token(preferred_username=user, groups=groups))
        assert response.status_code == 200, response.text
        assert response.json()["role"] == role
        no_role = _me(client, issuer.token(groups=["marketing"]))
        assert no_role.status_code == 401 and "names no Timbel role" in no_role.json()["detail"]


def test_the_claims_role_is_what_the_policy_checks(engine, warehouse_url, issuer):
    app = create_app(load_settings(
        timbel_database_url=warehouse_url, timbel_oidc_issuer=issuer.url,
        timbel_oidc_audience=AUDIENCE, timbel_oidc_role_claim="timbel_role",
    ))  # fmt: skip

    @app.get("/api/v1/probe")
    def probe(who: Annotated[Principal, Depends(require("audit.search"))]) -> dict:
        return {"user": who.user, "via": who.via}

    with TestClient(app) as client:
        ops = issuer.token(preferred_username="ops", timbel_role="operations")
        assert client.get("/api/v1/probe", headers=bearer(ops)).json() == {
            "user": "ops", "via": "oidc"
        }  # fmt: skip
        lowered = issuer.token(preferred_username="ops", timbel_role="viewer")
        refused = client.get("/api/v1/probe", headers=bearer(lowered))
        assert refused.status_code == 403
        assert audit_events(engine, "api.refused")[-1][0] == "ops"


def test_a_tbl_token_still_works_beside_oidc(oidc_client, engine):
    assert _me(oidc_client, secret_for(engine, "dev")).json()["user"] == "dev"


def test_a_bad_role_map_is_refused_naming_the_entry():
    with pytest.raises(ValueError, match="'readers=boss'"):
        parse_role_map(["readers=boss"])


def test_every_role_is_ranked_for_the_claims_cap():
    assert sorted(ROLE_ORDER) == sorted(USER_ROLES)


def test_an_explicit_jwks_url_skips_discovery(engine, warehouse_url, issuer):
    with _client(warehouse_url, issuer, timbel_oidc_jwks_url=f"{issuer.url}/jwks") as client:
        assert _me(client, issuer.token()).status_code == 200
    assert issuer.requests == ["/jwks"]


def test_a_discovery_document_of_another_issuer_is_refused(engine, warehouse_url, issuer):
    # The configured issuer differs from the one the server's discovery document names.
    with _client(warehouse_url, issuer, timbel_oidc_issuer=issuer.url + "/other") as client:
        response = _me(client, issuer.token(iss=issuer.url + "/other"))
    assert response.status_code == 401
    assert "is the discovery document of another issuer" in response.json()["detail"]


def test_an_issuer_without_an_audience_stops_start_up(engine, warehouse_url, issuer):
    with pytest.raises(ValueError, match="TIMBEL_OIDC_AUDIENCE"):
        create_app(load_settings(timbel_database_url=warehouse_url, timbel_oidc_issuer=issuer.url))
