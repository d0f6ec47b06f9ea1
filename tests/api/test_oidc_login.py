"""The approvals page's "Sign in with SSO" in process (TestClient) against the local issuer's
authorization server (tests/api/oidc_issuer.py): the Authorization Code flow with PKCE,
state and nonce, every refusal a readable page that is audited, and the session checked
again on every request. The browser run is in tests/api/test_approvals_page.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.api.approvals import pending_request, steps_of
from tests.api.conftest import audit_events
from tests.api.oidc_issuer import AUDIENCE, CLIENT_ID, Issuer, serve_issuer
from timbel_dagster.api.app import create_app
from timbel_dagster.api.web import session as sessions
from timbel_dagster.identity.oidc_login import challenge
from timbel_dagster.settings import load_settings
from timbel_dagster.warehouse.people.user_admin import set_disabled
from timbel_dagster.warehouse.schema.models import User

PUBLIC = "http://testserver"  # TestClient's own base URL
SECRET_KEY = "page-session-test-key"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as running:
        yield running


def _app(warehouse_url: str, issuer: Issuer, **settings):
    options = {
        "timbel_oidc_issuer": issuer.url,
        "timbel_oidc_audience": AUDIENCE,
        "timbel_oidc_client_id": CLIENT_ID,
        "timbel_public_url": PUBLIC,
        "timbel_secret_key": SECRET_KEY,
    } | settings
    return create_app(load_settings(timbel_database_url=warehouse_url, **options))


@pytest.fixture
def sso(engine, warehouse_url: str, issuer: Issuer) -> Iterator[TestClient]:
    with TestClient(_app(warehouse_url, issuer)) as client:
        yield client


def _to_issuer(client: TestClient) -> str:
    started = client.get("/login/oidc", follow_redirects=False)
    assert started.status_code == 303, started.text
    return started.headers["location"]


def _issuer_answer(authorize_url: str) -> str:
    """The issuer's redirect back (approved at once): the callback's path and query."""
    answer = httpx.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(f"{PUBLIC}/login/oidc/callback?")
    return location[len(PUBLIC) :]


def _sign_in(client: TestClient) -> httpx.Response:
    return client.get(_issuer_answer(_to_issuer(client)), follow_redirects=False)


def _refusals(engine) -> list[tuple[str, int, str]]:
    return [(a, d["status"], d["reason"]) for a, _, d in audit_events(engine, "api.refused")]


def _csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/approvals").text).group(1)


def test_a_team_lead_signs_in_and_approves(sso: TestClient, issuer, engine, warehouse_url):
    number = pending_request(warehouse_url)
    authorize = _to_issuer(sso)
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert authorize.startswith(f"{issuer.url}/authorize?")  # from the discovery document
    assert query["client_id"] == CLIENT_ID and query["scope"] == "openid profile email"
    assert query["redirect_uri"] == f"{PUBLIC}/login/oidc/callback"
    assert (query["response_type"], query["code_challenge_method"]) == ("code", "S256")
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    flow = sso.cookies.get(sessions.FLOW_COOKIE)
    assert query["state"] in _payload(flow) and query["code_challenge"] not in flow

    signed_in = sso.get(_issuer_answer(authorize), follow_redirects=False)
    assert signed_in.status_code == 200, signed_in.text
    assert "Signed in as lead (team_lead)" in signed_in.text
    assert 'http-equiv="refresh" content="0; url=/approvals"' in signed_in.text
    cookies = signed_in.headers.get_list("set-cookie")
    [session] = [c.lower() for c in cookies if c.startswith(f"{sessions.COOKIE}=")]
    assert "httponly" in session and "samesite=strict" in session
    max_age = int(re.search(r"max-age=(\d+)", session).group(1))
    assert 250 < max_age <= 300  # the ID token's exp (5 minutes), not SESSION_HOURS
    assert sso.cookies.get(sessions.FLOW_COOKIE) is None  # the sign-in's values are spent

    page = sso.get("/approvals")
    assert '<span id="who">lead (team_lead)</span>' in page.text
    decided = sso.post(
        f"/approvals/{number}/decide",
        data={"csrf": _csrf(sso), "decision": "approve", "reason": "tested on staging"},
        follow_redirects=False,
    )
    assert decided.status_code == 303, decided.text
    assert steps_of(engine, number) == [("approved", "lead"), ("pending", None)]
    [(actor, _, details)] = audit_events(engine, "deploy.approve")
    assert (actor, details["reason"]) == ("lead", "tested on staging")
    assert issuer.token_errors == []


def _payload(cookie: str) -> str:
    text = cookie.split(".")[1]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def test_an_answer_with_another_state_is_refused(sso: TestClient, engine) -> None:
    callback = _issuer_answer(_to_issuer(sso))
    forged = re.sub(r"state=[^&]+", "state=someone-elses", callback)
    response = sso.get(forged, follow_redirects=False)
    assert response.status_code == 400
    assert "state is not the one this sign-in sent" in response.text
    assert sessions.COOKIE not in sso.cookies
    assert _refusals(engine) == [("anonymous", 400, "state")]
    # Without the sign-in's cookie (another browser, or over 10 minutes) it is refused too.
    sso.cookies.clear()
    again = sso.get(callback, follow_redirects=False)
    assert again.status_code == 400 and "no sign-in was started in this browser" in again.text


def test_a_replayed_code_is_refused(sso: TestClient, issuer, engine) -> None:
    authorize = _to_issuer(sso)
    flow = sso.cookies.get(sessions.FLOW_COOKIE)
    callback = _issuer_answer(authorize)
    assert sso.get(callback, follow_redirects=False).status_code == 200
    with TestClient(sso.app) as replayer:  # even with the sign-in's own cookie
        replayer.cookies.set(sessions.FLOW_COOKIE, flow, domain="testserver.local")
        response = replayer.get(callback, follow_redirects=False)
    assert response.status_code == 401, response.text
    assert "refused the sign-in code (invalid_grant: unknown or used code)" in response.text
    assert sessions.COOKIE not in replayer.cookies
    assert issuer.token_errors == ["invalid_grant: unknown or used code"]
    assert _refusals(engine) == [("anonymous", 401, "code_refused")]


def _resigned_flow(cookie: str, **changes: str) -> str:
    """The flow cookie with `changes`, signed with the app's key as the app signs it."""
    kind, _, until, _ = cookie.split(".")
    values = json.loads(_payload(cookie)) | changes
    packed = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    payload = base64.urlsafe_b64encode(packed).rstrip(b"=").decode()
    body = f"{kind}.{payload}.{until}"
    key = sessions.derive_key(SECRET_KEY)
    return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}"


def test_a_wrong_pkce_verifier_is_refused_by_the_issuer(sso: TestClient, issuer, engine) -> None:
    authorize = _to_issuer(sso)
    flow = sso.cookies.get(sessions.FLOW_COOKIE)
    wrong = "w" * 43
    assert challenge(wrong) not in authorize
    sso.cookies.set(sessions.FLOW_COOKIE, _resigned_flow(flow, verifier=wrong))
    response = sso.get(_issuer_answer(authorize), follow_redirects=False)
    assert response.status_code == 401
    assert "code_verifier does not match" in response.text
    assert issuer.token_errors == ["invalid_grant: code_verifier does not match"]
    assert _refusals(engine) == [("anonymous", 401, "code_refused")]


def test_an_id_token_with_another_nonce_is_refused(sso: TestClient, issuer, engine) -> None:
    issuer.id_token_overrides = {"nonce": "the-nonce-of-another-sign-in"}
    response = _sign_in(sso)
    assert response.status_code == 401
    assert "nonce is not the one this sign-in sent" in response.text
    assert sessions.COOKIE not in sso.cookies
    assert _refusals(engine) == [("anonymous", 401, "nonce")]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aud": "another-client"}, "Audience doesn&#39;t match"),
        ({"aud": [CLIENT_ID, "other"], "azp": "other"}, "azp is &#39;other&#39;"),
        ({"iss": "http://127.0.0.1:1/elsewhere"}, "Invalid issuer"),
    ],
)
def test_an_id_token_for_another_client_or_issuer_is_refused(
    sso: TestClient, issuer, engine, overrides, message
) -> None:
    issuer.id_token_overrides = overrides
    response = _sign_in(sso)
    assert response.status_code == 401 and message in response.text, response.text
    assert _refusals(engine) == [("anonymous", 401, "invalid")]


def test_an_unknown_or_disabled_user_is_refused(sso: TestClient, issuer, engine) -> None:
    issuer.user = {"sub": "subject-nobody", "preferred_username": "nobody"}
    unknown = _sign_in(sso)
    assert unknown.status_code == 401
    assert "OIDC user &#39;nobody&#39;" in unknown.text and 'id="error"' in unknown.text
    set_disabled(engine, "admin", "dev", True)
    issuer.user = {"sub": "subject-dev", "preferred_username": "dev"}
    disabled = _sign_in(sso)
    assert disabled.status_code == 401 and "disabled" in disabled.text
    assert sessions.COOKIE not in sso.cookies
    assert _refusals(engine) == [
        ("anonymous", 401, "unknown_user"), ("anonymous", 401, "user_disabled")
    ]  # fmt: skip


def test_a_service_account_cannot_sign_in_and_its_session_ends(
    sso: TestClient, issuer, engine
) -> None:
    def make_service(name: str) -> None:
        with engine.begin() as connection:
            connection.execute(update(User).where(User.name == name).values(kind="service"))

    make_service("dev")
    issuer.user = {"sub": "subject-dev", "preferred_username": "dev"}
    refused = _sign_in(sso)
    assert refused.status_code == 401
    assert "SSO sign-in refused: OIDC user &#39;dev&#39; is a service account" in refused.text
    assert sessions.COOKIE not in sso.cookies
    assert _refusals(engine) == [("anonymous", 401, "service_account")]
    # A session opened before the user became a service account ends at its next request.
    issuer.user = {"sub": "subject-lead", "preferred_username": "lead"}
    assert _sign_in(sso).status_code == 200
    make_service("lead")
    assert sso.get("/approvals", follow_redirects=False).headers["location"] == "/login"


def test_disabling_the_user_ends_their_session(sso: TestClient, engine, warehouse_url) -> None:
    number = pending_request(warehouse_url)
    assert _sign_in(sso).status_code == 200
    csrf = _csrf(sso)
    set_disabled(engine, "admin", "lead", True)
    assert sso.get("/approvals", follow_redirects=False).headers["location"] == "/login"
    response = sso.post(
        f"/approvals/{number}/decide",
        data={"csrf": csrf, "decision": "approve", "reason": "ok"},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert audit_events(engine, "deploy.approve") == []


def test_a_lowered_role_applies_at_once_and_a_forged_session_is_none(sso, engine) -> None:
    assert _sign_in(sso).status_code == 200
    with engine.begin() as connection:
        connection.execute(update(User).where(User.name == "lead").values(role="viewer"))
    assert '<span id="who">lead (viewer)</span>' in sso.get("/approvals").text
    # The cookie names the user and role in the clear; changing them breaks the signature.
    kind, payload, until, signature = sso.cookies.get(sessions.COOKIE).split(".")
    forged = json.loads(_payload(f"x.{payload}")) | {"u": "admin", "r": "admin"}
    text = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    sso.cookies.set(sessions.COOKIE, f"{kind}.{text}.{until}.{signature}")
    assert sso.get("/approvals", follow_redirects=False).headers["location"] == "/login"


def test_the_issuers_refusal_is_shown_and_audited(sso: TestClient, issuer, engine) -> None:
    issuer.deny = "access_denied"
    response = _sign_in(sso)
    assert response.status_code == 401
    assert "the issuer refused the sign-in (access_denied: test issuer says no)" in response.text
    assert _refusals(engine) == [("anonymous", 401, "issuer_refused")]


def test_a_confidential_client_authenticates_with_its_secret(engine, warehouse_url, issuer) -> None:
    issuer.client_secret = "s3cret:%41+/"  # urlencoded before Basic (RFC 6749 2.3.1)
    app = _app(warehouse_url, issuer, timbel_oidc_client_secret=issuer.client_secret)
    with TestClient(app) as client:
        assert _sign_in(client).status_code == 200
    wrong = _app(warehouse_url, issuer, timbel_oidc_client_secret="guessed")
    with TestClient(wrong) as client:
        refused = _sign_in(client)
    assert refused.status_code == 401 and "invalid_client" in refused.text


def test_an_unreachable_issuer_is_a_502_naming_it(engine, warehouse_url) -> None:
    with serve_issuer() as gone:
        url = gone.url
    app = create_app(load_settings(
        timbel_database_url=warehouse_url, timbel_oidc_issuer=url, timbel_oidc_audience=AUDIENCE,
        timbel_oidc_client_id=CLIENT_ID, timbel_public_url=PUBLIC,
    ))  # fmt: skip
    with TestClient(app) as client:
        response = client.get("/login/oidc", follow_redirects=False)
    assert response.status_code == 502
    assert f"OIDC discovery at {url}/.well-known/openid-configuration failed" in response.text


def test_the_sso_button_shows_only_where_sso_is_configured(
    client: TestClient, sso: TestClient, engine, warehouse_url, issuer
) -> None:
    assert "Sign in with SSO" not in client.get("/login").text
    assert client.get("/login/oidc", follow_redirects=False).status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404
    # OIDC for the API alone (no page client id): no button either.
    api_only = _app(warehouse_url, issuer, timbel_oidc_client_id=None)
    with TestClient(api_only) as other:
        assert "Sign in with SSO" not in other.get("/login").text
    assert '<a href="/login/oidc" id="sso">Sign in with SSO</a>' in sso.get("/login").text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timbel_public_url": None}, "TIMBEL_OIDC_CLIENT_ID needs TIMBEL_PUBLIC_URL"),
        ({"timbel_oidc_issuer": None}, "TIMBEL_OIDC_CLIENT_ID needs TIMBEL_OIDC_ISSUER"),
        ({"timbel_oidc_scopes": "profile email"}, "TIMBEL_OIDC_SCOPES: 'profile email' lacks"),
    ],
)
def test_an_incomplete_sso_configuration_stops_start_up(
    engine, warehouse_url, issuer, settings, message
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _app(warehouse_url, issuer, **settings)
