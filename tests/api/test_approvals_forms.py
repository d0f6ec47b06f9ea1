"""The approvals page in process (TestClient): the session cookie, the CSRF token, who sees
what, and that every refusal changes nothing and is audited with the real user. The
browser run of the same page is tests/api/test_approvals_page.py."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.api.approvals import IMAGE, RISK, UNDECIDED, pending_request, steps_of
from tests.api.conftest import audit_events, secret_for
from timbel_dagster.identity import tokens
from timbel_dagster.ml.risk.words import reason_text
from timbel_dagster.warehouse.people.user_admin import add_user
from timbel_dagster.warehouse.people.users import UserEntry


@pytest.fixture
def number(engine, warehouse_url: str) -> int:
    return pending_request(warehouse_url)


def _login(client: TestClient, engine, user: str) -> str:
    secret = secret_for(engine, user)
    response = client.post("/login", data={"token": secret}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/approvals"
    return secret


def _csrf(client: TestClient) -> str:
    page = client.get("/approvals")
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def test_without_a_session_the_page_sends_you_to_log_in(client: TestClient, number: int) -> None:
    response = client.get("/approvals", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    refused = client.post(f"/approvals/{number}/decide", data={"decision": "approve",
                          "reason": "x"}, follow_redirects=False)  # fmt: skip
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "no API token"),
        ("not-a-token", "not a Timbel API token (they start with tbl_)"),
        ("tbl_" + "x" * 43, "unknown API token"),
    ],
)
def test_a_bad_token_is_refused_with_the_api_message(
    client: TestClient, engine, number: int, token: str, message: str
) -> None:
    response = client.post("/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 401
    assert message in response.text
    assert "timbel_session" not in response.headers.get("set-cookie", "")
    assert [actor for actor, _, _ in audit_events(engine, "api.refused")] == ["anonymous"]


def test_the_session_cookie_names_the_token_signed_never_its_secret(app, engine, number) -> None:
    with TestClient(app, base_url="https://testserver") as client:
        secret = _login(client, engine, "lead")
        cookie = client.cookies.get("timbel_session")
        again = client.post("/login", data={"token": secret}, follow_redirects=False)
    header = again.headers["set-cookie"]
    assert secret not in cookie and secret[4:] not in cookie
    lowered = header.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "secure" in lowered


def test_a_forged_or_revoked_session_is_no_session(client: TestClient, engine, number) -> None:
    secret = _login(client, engine, "lead")
    good = client.cookies.get("timbel_session")
    kind, token_hex, expires, signature = good.split(".")
    assert kind == "token"
    later = f"{kind}.{token_hex}.{int(expires) + 9999}.{signature}"
    client.cookies.set("timbel_session", later)
    assert client.get("/approvals", follow_redirects=False).status_code == 303
    client.cookies.set("timbel_session", good)
    assert client.get("/approvals", follow_redirects=False).status_code == 200
    tokens.revoke_token(engine, "lead", secret[:12])
    assert client.get("/approvals", follow_redirects=False).status_code == 303


def test_logging_out_needs_the_csrf_token(client: TestClient, engine, number: int) -> None:
    _login(client, engine, "lead")
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.get("/approvals", follow_redirects=False).status_code == 200
    out = client.post("/logout", data={"csrf": _csrf(client)}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert client.get("/approvals", follow_redirects=False).status_code == 303


def test_the_team_lead_sees_the_request_with_its_risk_and_gate(
    client: TestClient, engine, number: int
) -> None:
    _login(client, engine, "lead")
    page = client.get("/approvals").text
    assert f'id="request-{number}"' in page and IMAGE in page
    for reason in RISK["reasons"]:
        assert reason_text(reason) in page.replace("&#39;", "'")
    assert "31.0%" in page and "REVIEW" in page and "Ships 7 commits, +412" in page
    assert "cart" in page and "failed" in page  # similar deployments and their outcomes
    assert "Security gate" in page and "passes" in page
    assert 'value="approve"' in page


@pytest.mark.parametrize("user", ["dev_pay", "lead_pay", "dev", "viewer"])
def test_who_may_not_decide_sees_no_buttons_and_is_refused(
    client: TestClient, engine, number: int, user: str
) -> None:
    _login(client, engine, user)
    page = client.get("/approvals")
    assert page.status_code == 200
    assert 'value="approve"' not in page.text and f"request-{number}" not in page.text
    assert 'class="decide"' not in page.text  # no decision form at all
    # A hand-made POST with the session's own CSRF token is still refused.
    response = client.post(
        f"/approvals/{number}/decide",
        data={"csrf": _csrf(client), "decision": "approve", "reason": "looks fine"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert steps_of(engine, number) == UNDECIDED
    assert [(a, d["status"]) for a, _, d in audit_events(engine, "api.refused")] == [(user, 403)]


def test_a_post_without_the_csrf_token_changes_nothing(
    client: TestClient, engine, number: int
) -> None:
    _login(client, engine, "lead")
    for csrf in ("", "0" * 64):
        response = client.post(
            f"/approvals/{number}/decide",
            data={"csrf": csrf, "decision": "approve", "reason": "ok"},
            follow_redirects=False,
        )
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert steps_of(engine, number) == UNDECIDED
    assert [a for a, _, _ in audit_events(engine, "api.refused")] == ["lead", "lead"]
    assert audit_events(engine, "deploy.approve") == []


def test_a_csrf_token_of_another_session_is_refused(
    app, client: TestClient, engine, number: int
) -> None:
    _login(client, engine, "ops")
    stolen = _csrf(client)
    with TestClient(app) as other:
        _login(other, engine, "lead")
        response = other.post(
            f"/approvals/{number}/decide",
            data={"csrf": stolen, "decision": "approve", "reason": "ok"},
            follow_redirects=False,
        )
    assert response.status_code == 403
    assert steps_of(engine, number) == UNDECIDED


def test_the_team_lead_approves_and_the_request_moves_to_operations(
    client: TestClient, engine, number: int
) -> None:
    _login(client, engine, "lead")
    csrf = _csrf(client)
    empty = client.post(f"/approvals/{number}/decide", data={"csrf": csrf, "decision": "approve",
                        "reason": "  "}, follow_redirects=False)  # fmt: skip
    assert empty.status_code == 422 and steps_of(engine, number) == UNDECIDED
    response = client.post(
        f"/approvals/{number}/decide",
        data={"csrf": csrf, "decision": "approve", "reason": "checkout tested on staging"},
        follow_redirects=False,
    )
    assert (response.status_code, response.headers["location"]) == (
        303, f"/approvals?decided={number}"
    )  # fmt: skip
    after = client.get(response.headers["location"]).text
    assert f"request #{number} is now pending, waiting for step 2 (operations)" in after
    assert f"request-{number}" not in after  # lead's step is done
    assert steps_of(engine, number) == [("approved", "lead"), ("pending", None)]
    [(actor, target, details)] = audit_events(engine, "deploy.approve")
    assert (actor, target) == ("lead", f"request #{number}")
    assert details["reason"] == "checkout tested on staging" and details["step"] == 1
    # A second try is the domain's refusal (audited there), not a second approval.
    again = client.post(f"/approvals/{number}/decide", data={"csrf": csrf, "decision":
                        "approve", "reason": "again"}, follow_redirects=False)  # fmt: skip
    assert again.status_code == 409
    assert len(audit_events(engine, "deploy.approve")) == 1
    assert [a for a, _, _ in audit_events(engine, "deploy.approve.refused")] == ["lead"]


def test_operations_rejects_at_their_step(client: TestClient, engine, number: int) -> None:
    _login(client, engine, "ops")
    assert f"request-{number}" not in client.get("/approvals").text  # team lead's step first
    with TestClient(client.app) as lead:
        _login(lead, engine, "lead")
        lead.post(f"/approvals/{number}/decide", data={"csrf": _csrf(lead), "decision":
                  "approve", "reason": "ok"})  # fmt: skip
    response = client.post(
        f"/approvals/{number}/decide",
        data={"csrf": _csrf(client), "decision": "reject", "reason": "freeze week"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert steps_of(engine, number) == [("approved", "lead"), ("rejected", "ops")]
    [(actor, _, details)] = audit_events(engine, "deploy.reject")
    assert (actor, details["status"]) == ("ops", "rejected")


def test_an_unknown_request_is_404(client: TestClient, engine, number: int) -> None:
    _login(client, engine, "lead")
    response = client.post(f"/approvals/{number + 40}/decide", data={"csrf": _csrf(client),
                           "decision": "approve", "reason": "x"})  # fmt: skip
    assert response.status_code == 404


def test_a_service_accounts_token_does_not_open_the_page(client: TestClient, engine) -> None:
    """The page is for people; automation decides nothing here (its token works on the API)."""
    add_user(engine, "admin", UserEntry("release-bot", "developer", kind="service"))
    secret = tokens.create_token(engine, "admin", "release-bot")["secret"]
    response = client.post("/login", data={"token": secret}, follow_redirects=False)
    assert response.status_code == 401
    assert "release-bot is a service account" in response.text
    assert "timbel_session" not in response.headers.get("set-cookie", "")
    assert audit_events(engine, "api.refused")[-1][2]["reason"] == "service_account"
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()["kind"]
        == "service"
    )
